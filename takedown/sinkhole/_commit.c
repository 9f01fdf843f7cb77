/* Native spool I/O for the sinkhole's group commit: pwritev + fdatasync on a thread of its own
 * that never takes the GIL.
 *
 * Why: a Python thread that syncs a block needs the GIL back after every system call, and the
 * event loop thread holds it most of the time under load. Measured on the sinkhole (wrk, 64
 * keep-alive connections), that hand-over cost more than the write and the sync themselves.
 * Here the Python side encodes a block, hands its buffers to ``Committer.submit`` and goes on
 * serving; this thread writes them at the given offset, syncs the data and signals an eventfd,
 * which the event loop watches. ``result()`` then says how many bytes reached the file and the
 * errno of the first failure (0 if none).
 *
 * One block is in flight at a time (group commit never has more). The buffers are held (as
 * Py_buffer views) from ``submit`` until ``result`` or ``close``, so they cannot move or be
 * freed while the thread reads them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_BUFS 8

enum state { IDLE, QUEUED, DONE };

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* to the thread: a job, or stop */
    pthread_cond_t done;   /* from the thread: the job is done */
    pthread_t thread;
    int running;           /* the thread exists (not yet joined) */
    int stop;
    int efd;
    enum state state;
    /* the job */
    int fd;
    long long offset;
    int sync;
    int nbufs;
    Py_buffer views[MAX_BUFS];
    /* its result */
    long long written;
    int err;
} Committer;

static void release_views(Committer *c) {
    for (int i = 0; i < c->nbufs; i++) {
        PyBuffer_Release(&c->views[i]);
    }
    c->nbufs = 0;
}

/* Write every byte of iov at offset (a short write goes on where it stopped), then sync. */
static void do_job(int fd, struct iovec *iov, int n, long long offset, int sync,
                   long long *written, int *err) {
    long long total = 0;
    int first = 0;
    *err = 0;
    for (;;) {
        while (first < n && iov[first].iov_len == 0) {
            first++;
        }
        if (first == n) {
            break;
        }
        ssize_t r = pwritev(fd, iov + first, n - first, (off_t)(offset + total));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *err = errno;
            break;
        }
        if (r == 0) {
            *err = ENOSPC; /* a regular file takes nothing only when it has no room */
            break;
        }
        total += r;
        while (first < n && (size_t)r >= iov[first].iov_len) {
            r -= (ssize_t)iov[first].iov_len;
            first++;
        }
        if (first < n && r > 0) {
            iov[first].iov_base = (char *)iov[first].iov_base + r;
            iov[first].iov_len -= (size_t)r;
        }
    }
    while (*err == 0 && sync && fdatasync(fd) < 0) {
        if (errno != EINTR) {
            *err = errno;
        }
    }
    *written = total;
}

static void *run(void *arg) {
    Committer *c = (Committer *)arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->state != QUEUED && !c->stop) {
            pthread_cond_wait(&c->wake, &c->mu);
        }
        if (c->state != QUEUED) {
            break; /* stop, nothing queued */
        }
        struct iovec iov[MAX_BUFS];
        int n = c->nbufs;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = c->views[i].buf;
            iov[i].iov_len = (size_t)c->views[i].len;
        }
        int fd = c->fd, sync = c->sync;
        long long offset = c->offset, written = 0;
        int err = 0;
        pthread_mutex_unlock(&c->mu);
        do_job(fd, iov, n, offset, sync, &written, &err);
        pthread_mutex_lock(&c->mu);
        c->written = written;
        c->err = err;
        c->state = DONE;
        pthread_cond_broadcast(&c->done);
        uint64_t one = 1;
        ssize_t ignored = write(c->efd, &one, sizeof one); /* EAGAIN: already signalled */
        (void)ignored;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int start_thread(Committer *c) {
    /* Signals are for the main thread (asyncio's handlers): blocked in this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, run, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    c->running = 1;
    return 0;
}

static PyObject *Committer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Committer", kwlist)) {
        return NULL;
    }
    Committer *c = (Committer *)type->tp_alloc(type, 0);
    if (c == NULL) {
        return NULL;
    }
    c->efd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->wake, NULL);
    pthread_cond_init(&c->done, NULL);
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(c);
        return NULL;
    }
    if (start_thread(c) < 0) {
        Py_DECREF(c);
        return NULL;
    }
    return (PyObject *)c;
}

/* Wait (without the GIL) for a queued job to finish. Called with the GIL held. */
static void wait_done(Committer *c) {
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&c->mu);
    while (c->state == QUEUED) {
        pthread_cond_wait(&c->done, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    Py_END_ALLOW_THREADS
}

static void stop_thread(Committer *c) {
    if (!c->running) {
        return;
    }
    wait_done(c);
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    Py_END_ALLOW_THREADS
    c->running = 0;
}

static PyObject *Committer_close(Committer *c, PyObject *Py_UNUSED(ignored)) {
    stop_thread(c);
    release_views(c);
    c->state = IDLE;
    if (c->efd >= 0) {
        close(c->efd);
        c->efd = -1;
    }
    Py_RETURN_NONE;
}

static void Committer_dealloc(Committer *c) {
    PyObject *ignored = Committer_close(c, NULL);
    Py_XDECREF(ignored);
    pthread_cond_destroy(&c->done);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->mu);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *Committer_submit(Committer *c, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "buffers", "offset", "sync", NULL};
    int fd, sync = 1;
    long long offset;
    PyObject *buffers;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOL|p:submit", kwlist, &fd, &buffers, &offset,
                                     &sync)) {
        return NULL;
    }
    if (!c->running) {
        PyErr_SetString(PyExc_ValueError, "committer is closed");
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    int idle = c->state == IDLE;
    pthread_mutex_unlock(&c->mu);
    if (!idle) {
        PyErr_SetString(PyExc_RuntimeError, "a block is already in flight: take its result first");
        return NULL;
    }
    if (fd < 0 || offset < 0) {
        PyErr_SetString(PyExc_ValueError, "fd and offset must not be negative");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(buffers, "buffers must be a sequence of bytes-like objects");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_BUFS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "between 1 and %d buffers, not %zd", MAX_BUFS, n);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &c->views[i], PyBUF_SIMPLE) < 0) {
            c->nbufs = (int)i;
            release_views(c);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    pthread_mutex_lock(&c->mu);
    c->nbufs = (int)n;
    c->fd = fd;
    c->offset = offset;
    c->sync = sync;
    c->state = QUEUED;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
    Py_RETURN_NONE;
}

/* (bytes written, errno or 0) of the finished block, or None while it is still in flight. */
static PyObject *Committer_result(Committer *c, PyObject *Py_UNUSED(ignored)) {
    if (c->efd >= 0) {
        uint64_t count;
        ssize_t ignored = read(c->efd, &count, sizeof count); /* EAGAIN: nothing signalled */
        (void)ignored;
    }
    pthread_mutex_lock(&c->mu);
    if (c->state != DONE) {
        pthread_mutex_unlock(&c->mu);
        Py_RETURN_NONE;
    }
    long long written = c->written;
    int err = c->err;
    c->state = IDLE;
    pthread_mutex_unlock(&c->mu);
    release_views(c);
    return Py_BuildValue("(Li)", written, err);
}

/* Block until the block in flight is done; its result (None if nothing was in flight). */
static PyObject *Committer_wait(Committer *c, PyObject *Py_UNUSED(ignored)) {
    wait_done(c);
    return Committer_result(c, NULL);
}

static PyObject *Committer_fileno(Committer *c, PyObject *Py_UNUSED(ignored)) {
    if (c->efd < 0) {
        PyErr_SetString(PyExc_ValueError, "committer is closed");
        return NULL;
    }
    return PyLong_FromLong(c->efd);
}

static PyObject *Committer_get_busy(Committer *c, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(c->state != IDLE);
}

static PyMethodDef Committer_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))Committer_submit, METH_VARARGS | METH_KEYWORDS,
     "submit(fd, buffers, offset, sync=True): write the buffers at offset, then fdatasync,\n"
     "on the committer's thread. One block at a time."},
    {"result", (PyCFunction)Committer_result, METH_NOARGS,
     "(written, errno) of the finished block, or None while it is in flight."},
    {"wait", (PyCFunction)Committer_wait, METH_NOARGS,
     "Wait for the block in flight; its result, or None if there was none."},
    {"fileno", (PyCFunction)Committer_fileno, METH_NOARGS,
     "The eventfd that becomes readable when a block is done."},
    {"close", (PyCFunction)Committer_close, METH_NOARGS,
     "Finish the block in flight, stop the thread, close the eventfd."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Committer_getset[] = {
    {"busy", (getter)Committer_get_busy, NULL, "A block was submitted and its result not taken.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CommitterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "takedown.sinkhole._commit.Committer",
    .tp_doc = "A thread that writes and syncs one spool block at a time, without the GIL.",
    .tp_basicsize = sizeof(Committer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Committer_new,
    .tp_dealloc = (destructor)Committer_dealloc,
    .tp_methods = Committer_methods,
    .tp_getset = Committer_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "takedown.sinkhole._commit",
    .m_doc = "Native spool I/O: pwritev + fdatasync on a thread that never takes the GIL.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__commit(void) {
    if (PyType_Ready(&CommitterType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&CommitterType);
    if (PyModule_AddObject(m, "Committer", (PyObject *)&CommitterType) < 0) {
        Py_DECREF(&CommitterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
