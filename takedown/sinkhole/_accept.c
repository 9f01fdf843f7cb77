/* The sinkhole's accept path for new HTTP connections, in C (after nginx's: accept, read,
 * answer, close, and nothing else per connection).
 *
 * Why: nearly every bot check-in is a new connection carrying one whole request that asks to
 * be closed after its answer. Through uvloop, each such connection costs a transport and a
 * protocol object, their handles and weak references, four more system calls (the addresses,
 * TCP_NODELAY, epoll registration) and a pass through the loop between the accept and the read:
 * more CPU than the request's own work. Here the worker watches the listening socket itself.
 * ``Acceptor.accept`` takes the waiting connections, reads each once, and hands back
 * (fd, peer host, peer port, bytes read, local address or None). The worker records a
 * connection whose bytes are one whole simple request that closes the connection and, once its
 * event is durable, answers it with ``Acceptor.reply`` (one send, one close). Any other
 * connection (nothing read yet, a part of a request, keep-alive, pipelining, llhttp's cases) it
 * hands to uvloop, with the bytes already read, as an ordinary connection.
 *
 * ``held`` counts the connections given out by ``accept`` and not yet replied to or handed
 * over (the worker lowers it when it hands one over), so that the connection cap counts them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BYTES 65536

typedef struct {
    PyObject_HEAD
    int fd;               /* the listening socket (not owned) */
    int want_local;       /* report each connection's local address (a wildcard listen) */
    Py_ssize_t held;      /* given out by accept, not yet replied to or handed over */
    Py_ssize_t accepted;  /* connections accepted */
    Py_ssize_t refused;   /* accepted and closed at once: over the connection cap */
    Py_ssize_t empty;     /* closed by the peer before sending anything */
    Py_ssize_t partial;   /* replies the socket did not take whole (given to ``leftover``) */
    int error;            /* errno of the accept that stopped the last batch, 0 if none */
    PyObject *leftover;   /* leftover(fd, unsent bytes): the rest of a reply, to finish */
    char *buf;
} Acceptor;

/* The host (text, as uvloop gives it) and port of a socket address. */
static int address(const struct sockaddr_storage *sa, char host[INET6_ADDRSTRLEN]) {
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, INET6_ADDRSTRLEN);
        return ntohs(in->sin_port);
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, INET6_ADDRSTRLEN);
        return ntohs(in6->sin6_port);
    }
    host[0] = '\0';
    return 0;
}

static int Acceptor_init(Acceptor *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "leftover", "want_local", NULL};
    int fd, want_local = 0;
    PyObject *leftover;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iO|p", kwlist, &fd, &leftover, &want_local))
        return -1;
    if (!PyCallable_Check(leftover)) {
        PyErr_SetString(PyExc_TypeError, "leftover must be callable");
        return -1;
    }
    if (self->buf == NULL) {
        self->buf = PyMem_Malloc(READ_BYTES);
        if (self->buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    self->fd = fd;
    self->want_local = want_local;
    Py_XSETREF(self->leftover, Py_NewRef(leftover));
    return 0;
}

static void Acceptor_dealloc(Acceptor *self) {
    Py_XDECREF(self->leftover);
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* One accepted connection's tuple, after one read; NULL with no exception when the
 * connection is already closed (the peer closed or reset it before sending anything). */
static PyObject *first_read(Acceptor *self, int cfd, const struct sockaddr_storage *peer) {
    ssize_t n;
    do {
        n = recv(cfd, self->buf, READ_BYTES, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        self->empty++;
        close(cfd);
        return NULL;
    }
    char host[INET6_ADDRSTRLEN];
    int port = address(peer, host);
    PyObject *local;
    if (!self->want_local) {
        local = Py_NewRef(Py_None);
    } else {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        char local_host[INET6_ADDRSTRLEN] = "";
        int local_port = 0;
        if (getsockname(cfd, (struct sockaddr *)&sa, &len) == 0) {
            local_port = address(&sa, local_host);
        }
        local = Py_BuildValue("(si)", local_host, local_port);
    }
    PyObject *item = local == NULL ? NULL
                                   : Py_BuildValue("(isiy#N)", cfd, host, port,
                                                   self->buf, (Py_ssize_t)(n > 0 ? n : 0), local);
    if (item == NULL) close(cfd);
    return item;
}

/* A batch that cannot be given out (no memory for it): its connections are closed. */
static PyObject *drop_batch(Acceptor *self, PyObject *out) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(out); i++) {
        PyObject *fd = PyTuple_GET_ITEM(PyList_GET_ITEM(out, i), 0);
        close((int)PyLong_AsLong(fd)); /* an int made here: no error */
        self->held--;
    }
    Py_DECREF(out);
    return NULL;
}

static PyObject *Acceptor_accept(Acceptor *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "accept(batch, room) takes 2 arguments");
        return NULL;
    }
    Py_ssize_t batch = PyLong_AsSsize_t(args[0]);
    Py_ssize_t room = PyLong_AsSsize_t(args[1]);
    if ((batch == -1 || room == -1) && PyErr_Occurred()) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    self->error = 0;
    for (Py_ssize_t i = 0; i < batch; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int cfd = accept4(self->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) self->error = errno;
            break;
        }
        self->accepted++;
        if (room <= 0) {
            self->refused++;
            close(cfd);
            continue;
        }
        PyObject *item = first_read(self, cfd, &peer);
        if (item == NULL) {
            if (PyErr_Occurred()) return drop_batch(self, out);
            continue;
        }
        int failed = PyList_Append(out, item);
        Py_DECREF(item);
        if (failed) {
            close(cfd);
            return drop_batch(self, out);
        }
        room--;
        self->held++;
    }
    return out;
}

/* reply(fd, answer, failure, ok): send ``answer`` (``failure`` when not ok) and close. */
static PyObject *Acceptor_reply(Acceptor *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "reply(fd, answer, failure, ok) takes 4 arguments");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "reply: not a file descriptor");
        return NULL;
    }
    int ok = PyObject_IsTrue(args[3]);
    if (ok < 0) return NULL;
    PyObject *answer = ok ? args[1] : args[2];
    if (!PyBytes_Check(answer)) {
        PyErr_SetString(PyExc_TypeError, "reply: answer and failure must be bytes");
        return NULL;
    }
    self->held--;
    const char *p = PyBytes_AS_STRING(answer);
    Py_ssize_t left = PyBytes_GET_SIZE(answer);
    while (left > 0) {
        ssize_t n = send((int)fd, p, (size_t)left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            left = 0; /* the peer is gone (reset, pipe): nothing more to say */
            break;
        }
        p += n;
        left -= n;
    }
    if (left > 0) {
        /* A fresh socket takes a neutral answer whole; if this one did not, the rest goes to
         * the loop, which owns the descriptor from here. */
        self->partial++;
        PyObject *rest = PyBytes_FromStringAndSize(p, left);
        PyObject *r = rest == NULL ? NULL : PyObject_CallFunction(self->leftover, "lO", fd, rest);
        Py_XDECREF(rest);
        if (r == NULL) {
            close((int)fd);
            return NULL;
        }
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    close((int)fd);
    Py_RETURN_NONE;
}

static PyMethodDef Acceptor_methods[] = {
    {"accept", (PyCFunction)(void (*)(void))Acceptor_accept, METH_FASTCALL,
     "accept(batch, room): up to ``batch`` waiting connections, each read once, as\n"
     "(fd, peer host, peer port, bytes read, local (host, port) or None) tuples; beyond\n"
     "``room`` more, connections are closed at once (``refused``)."},
    {"reply", (PyCFunction)(void (*)(void))Acceptor_reply, METH_FASTCALL,
     "reply(fd, answer, failure, ok): send ``answer`` (``failure`` if not ok), close fd."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Acceptor_members[] = {
    {"fd", T_INT, offsetof(Acceptor, fd), READONLY, "the listening socket"},
    {"held", T_PYSSIZET, offsetof(Acceptor, held), 0,
     "connections given out by accept and not yet replied to or handed over"},
    {"accepted", T_PYSSIZET, offsetof(Acceptor, accepted), READONLY, "connections accepted"},
    {"refused", T_PYSSIZET, offsetof(Acceptor, refused), READONLY,
     "connections closed at once, over the cap"},
    {"empty", T_PYSSIZET, offsetof(Acceptor, empty), READONLY,
     "connections the peer closed before sending anything"},
    {"partial", T_PYSSIZET, offsetof(Acceptor, partial), READONLY,
     "replies finished by ``leftover``"},
    {"error", T_INT, offsetof(Acceptor, error), READONLY,
     "errno of the accept that stopped the last batch (0: none, the queue was empty)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject AcceptorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "takedown.sinkhole._accept.Acceptor",
    .tp_basicsize = sizeof(Acceptor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Accepts and reads new connections on a listening socket; replies and closes.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Acceptor_init,
    .tp_dealloc = (destructor)Acceptor_dealloc,
    .tp_methods = Acceptor_methods,
    .tp_members = Acceptor_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "takedown.sinkhole._accept",
    .m_doc = "The sinkhole's accept path for new HTTP connections, in C.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__accept(void) {
    if (PyType_Ready(&AcceptorType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    if (PyModule_AddObjectRef(mod, "Acceptor", (PyObject *)&AcceptorType) < 0 ||
        PyModule_AddIntConstant(mod, "READ_BYTES", READ_BYTES) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
