/* Spool rows to an Arrow IPC record-batch message, in one pass of C.
 *
 * ``encode(rows, kinds, widths)`` takes a list of tuples (one per event, in schema order) and
 * returns the encapsulated IPC message (continuation marker, metadata length, the RecordBatch
 * flatbuffer, the body) that ``pyarrow.RecordBatch.serialize`` would give for the same rows,
 * readable by ``pyarrow.ipc.read_record_batch`` with the schema. ``kinds`` names each column's
 * layout, one letter per column:
 *
 *   i  int32            values: int in range, or None
 *   q  int64 (and timestamps, as their integer count of units)
 *   s  utf8 string      values: str, or None
 *   b  binary           values: bytes, or None
 *   f  fixed-size binary of ``widths[col]`` bytes: bytes of exactly that length, or None
 *
 * Anything else (a value of another type, an int out of range, a str that is not valid
 * Unicode, a row of the wrong width, more than 2 GiB in one string column) raises
 * ``UnsupportedError``, and the caller hands the same rows to pyarrow, which either converts
 * them or says what is wrong. So this module decides only how fast a block is encoded, never what it
 * holds; tests/test_ipc.py holds it to pyarrow's answer.
 *
 * Why: a sinkhole block is a few dozen rows, and converting them column by column with
 * ``pa.array`` and ``RecordBatch.from_arrays`` cost about 300 us a block on the event loop's
 * thread, a fifth of the CPU of each request. This costs a few microseconds.
 *
 * The flatbuffer is laid out by hand (the layout never changes: a Message table whose header
 * is a RecordBatch table with two vectors of structs). Offsets are bytes from its start:
 *
 *    0  u32 root -> 16
 *    4  Message vtable (6 x u16: 12, 20, version@16, header_type@18, header@4, bodyLength@8)
 *   16  Message table: i32 vtable back-offset 12, u32 header -> 48, i64 bodyLength,
 *       i16 version (V5 = 4), u8 header_type (RecordBatch = 3)
 *   36  RecordBatch vtable (5 x u16: 10, 20, length@8, nodes@4, buffers@16)
 *   48  RecordBatch table: i32 back-offset 12, u32 nodes -> 68, i64 length, u32 buffers
 *   68  nodes vector: u32 count, then (i64 length, i64 null_count) per column
 *       (u32 pad), buffers vector: u32 count, then (i64 offset, i64 length) per buffer
 *
 * Body buffers start on 8-byte boundaries, as pyarrow writes them; a validity bitmap is
 * written only for a column with nulls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Arrow IPC encoder writes little-endian data only"
#endif

#define MAX_COLUMNS 256

static PyObject *UnsupportedError;

typedef struct {
    char kind;
    Py_ssize_t width;     /* 'f' only */
    Py_ssize_t nulls;
    Py_ssize_t data;      /* 's', 'b': bytes of values */
} Column;

static Py_ssize_t pad8(Py_ssize_t n) { return (n + 7) & ~(Py_ssize_t)7; }

static int unsupported(Py_ssize_t row, Py_ssize_t col, const char *what) {
    PyErr_Format(UnsupportedError, "row %zd, column %zd: %s", row, col, what);
    return -1;
}

/* The UTF-8 of a str value (cached by the str itself for non-ASCII text). */
static const char *utf8_of(PyObject *v, Py_ssize_t *len) {
    const char *s = PyUnicode_AsUTF8AndSize(v, len);
    if (s == NULL) PyErr_Clear(); /* lone surrogates: pyarrow says what is wrong */
    return s;
}

/* Pass one: check every value and count nulls and bytes. */
static int measure(PyObject *rows, Py_ssize_t n, Column *cols, Py_ssize_t ncols) {
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != ncols)
            return unsupported(r, -1, "not a tuple of the schema's width");
        for (Py_ssize_t c = 0; c < ncols; c++) {
            PyObject *v = PyTuple_GET_ITEM(row, c);
            Column *col = &cols[c];
            if (v == Py_None) {
                col->nulls++;
                continue;
            }
            switch (col->kind) {
            case 'i':
            case 'q': {
                if (!PyLong_CheckExact(v)) return unsupported(r, c, "not an int");
                int overflow = 0;
                long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
                if (overflow || (x == -1 && PyErr_Occurred())) {
                    PyErr_Clear();
                    return unsupported(r, c, "int out of range");
                }
                if (col->kind == 'i' && (x < INT32_MIN || x > INT32_MAX))
                    return unsupported(r, c, "int out of range");
                break;
            }
            case 's': {
                Py_ssize_t len;
                if (!PyUnicode_CheckExact(v)) return unsupported(r, c, "not a str");
                if (utf8_of(v, &len) == NULL) return unsupported(r, c, "not valid Unicode");
                col->data += len;
                break;
            }
            case 'b':
                if (!PyBytes_CheckExact(v)) return unsupported(r, c, "not bytes");
                col->data += PyBytes_GET_SIZE(v);
                break;
            case 'f':
                if (!PyBytes_CheckExact(v) || PyBytes_GET_SIZE(v) != col->width)
                    return unsupported(r, c, "not bytes of the column's width");
                break;
            }
            if (col->data > INT32_MAX) return unsupported(r, c, "over 2 GiB in one column");
        }
    }
    return 0;
}

static Py_ssize_t n_buffers(char kind) { return (kind == 's' || kind == 'b') ? 3 : 2; }

typedef struct {
    char *fb;       /* start of the flatbuffer */
    char *body;     /* start of the body */
    char *node;     /* next FieldNode */
    char *buf;      /* next Buffer */
    Py_ssize_t at;  /* next free body offset */
} Out;

static void put64(char *p, int64_t v) { memcpy(p, &v, 8); }
static void put32(char *p, int32_t v) { memcpy(p, &v, 4); }
static void put16(char *p, int16_t v) { memcpy(p, &v, 2); }

/* Reserve a body buffer of ``len`` bytes, list it, and return where it starts. */
static char *body_buffer(Out *o, Py_ssize_t len) {
    char *p = o->body + o->at;
    put64(o->buf, o->at);
    put64(o->buf + 8, len);
    o->buf += 16;
    o->at += pad8(len);
    return p;
}

/* Pass two: write one column's buffers (all values were checked by ``measure``). */
static void write_column(Out *o, PyObject *rows, Py_ssize_t n, Column *col, Py_ssize_t c) {
    put64(o->node, n);
    put64(o->node + 8, col->nulls);
    o->node += 16;
    unsigned char *valid = (unsigned char *)body_buffer(o, col->nulls ? (n + 7) / 8 : 0);
    char kind = col->kind;
    if (kind == 's' || kind == 'b') {
        char *offsets = body_buffer(o, (n + 1) * 4);
        char *data = body_buffer(o, col->data);
        int32_t end = 0;
        put32(offsets, 0);
        for (Py_ssize_t r = 0; r < n; r++) {
            PyObject *v = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, r), c);
            if (v != Py_None) {
                const char *s;
                Py_ssize_t len;
                if (kind == 's') {
                    s = utf8_of(v, &len);
                } else {
                    s = PyBytes_AS_STRING(v);
                    len = PyBytes_GET_SIZE(v);
                }
                memcpy(data + end, s, len);
                end += (int32_t)len;
                if (col->nulls) valid[r >> 3] |= (unsigned char)(1u << (r & 7));
            }
            put32(offsets + 4 * (r + 1), end);
        }
        return;
    }
    Py_ssize_t width = kind == 'i' ? 4 : kind == 'q' ? 8 : col->width;
    char *data = body_buffer(o, n * width);
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *v = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, r), c);
        if (v == Py_None) continue; /* zeros */
        if (col->nulls) valid[r >> 3] |= (unsigned char)(1u << (r & 7));
        if (kind == 'f') {
            memcpy(data + r * width, PyBytes_AS_STRING(v), width);
        } else if (kind == 'i') {
            put32(data + r * 4, (int32_t)PyLong_AsLongLong(v));
        } else {
            put64(data + r * 8, (int64_t)PyLong_AsLongLong(v));
        }
    }
}

static PyObject *encode(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rows, *widths;
    const char *kinds;
    Py_ssize_t ncols;
    if (!PyArg_ParseTuple(args, "O!s#O!:encode", &PyList_Type, &rows, &kinds, &ncols,
                          &PyTuple_Type, &widths))
        return NULL;
    if (ncols < 1 || ncols > MAX_COLUMNS || PyTuple_GET_SIZE(widths) != ncols) {
        PyErr_SetString(PyExc_ValueError, "kinds and widths must name 1 to 256 columns alike");
        return NULL;
    }
    Column cols[MAX_COLUMNS];
    Py_ssize_t nbuf = 0;
    for (Py_ssize_t c = 0; c < ncols; c++) {
        char k = kinds[c];
        if (strchr("iqsbf", k) == NULL || k == '\0') {
            PyErr_Format(PyExc_ValueError, "unknown column kind '%c'", k ? k : '0');
            return NULL;
        }
        Py_ssize_t w = PyLong_AsSsize_t(PyTuple_GET_ITEM(widths, c));
        if (w == -1 && PyErr_Occurred()) return NULL;
        if (k == 'f' && (w < 1 || w > (1 << 20))) {
            PyErr_SetString(PyExc_ValueError, "a fixed-size column needs a width of 1 to 1 MiB");
            return NULL;
        }
        cols[c] = (Column){k, w, 0, 0};
        nbuf += n_buffers(k);
    }
    Py_ssize_t n = PyList_GET_SIZE(rows);
    if (n > INT32_MAX / 64) return PyErr_Format(UnsupportedError, "%zd rows in one block", n), NULL;
    if (measure(rows, n, cols, ncols) < 0) return NULL;

    Py_ssize_t body_len = 0;
    for (Py_ssize_t c = 0; c < ncols; c++) {
        Column *col = &cols[c];
        body_len += pad8(col->nulls ? (n + 7) / 8 : 0);
        if (col->kind == 's' || col->kind == 'b')
            body_len += pad8((n + 1) * 4) + pad8(col->data);
        else
            body_len += pad8(n * (col->kind == 'i' ? 4 : col->kind == 'q' ? 8 : col->width));
    }
    Py_ssize_t fb_len = 80 + 16 * ncols + 16 * nbuf; /* a multiple of 8 */
    PyObject *out = PyBytes_FromStringAndSize(NULL, 8 + fb_len + body_len);
    if (out == NULL) return NULL;
    char *p = PyBytes_AS_STRING(out);
    memset(p, 0, 8 + fb_len + body_len);
    put32(p, -1); /* continuation marker */
    put32(p + 4, (int32_t)fb_len);
    char *fb = p + 8;
    Py_ssize_t buffers_at = 76 + 16 * ncols;
    put32(fb + 0, 16);
    static const int16_t message_vt[6] = {12, 20, 16, 18, 4, 8};
    memcpy(fb + 4, message_vt, sizeof message_vt);
    put32(fb + 16, 16 - 4);
    put32(fb + 20, 48 - 20);
    put64(fb + 24, body_len);
    put16(fb + 32, 4); /* MetadataVersion V5 */
    fb[34] = 3;        /* MessageHeader RecordBatch */
    static const int16_t batch_vt[5] = {10, 20, 8, 4, 16};
    memcpy(fb + 36, batch_vt, sizeof batch_vt);
    put32(fb + 48, 48 - 36);
    put32(fb + 52, 68 - 52);
    put64(fb + 56, n);
    put32(fb + 64, (int32_t)(buffers_at - 64));
    put32(fb + 68, (int32_t)ncols);
    put32(fb + buffers_at, (int32_t)nbuf);

    Out o = {fb, fb + fb_len, fb + 72, fb + buffers_at + 4, 0};
    for (Py_ssize_t c = 0; c < ncols; c++) write_column(&o, rows, n, &cols[c], c);
    return out;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(rows, kinds, widths) -> bytes: the Arrow IPC record-batch message of rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ipc",
    "Spool rows to an Arrow IPC record-batch message (see the source's head).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ipc(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    UnsupportedError = PyErr_NewExceptionWithDoc(
        "takedown.sinkhole._ipc.UnsupportedError",
        "A value this encoder does not take; pyarrow converts the rows instead.",
        PyExc_TypeError, NULL);
    if (UnsupportedError == NULL || PyModule_AddObjectRef(m, "UnsupportedError", UnsupportedError) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
