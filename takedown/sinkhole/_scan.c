/* The sinkhole's fast path (``fastpath.read_simple``) in C: one pass over a simple, complete
 * request, with the same answer as the Python reference for every input.
 *
 * ``read_simple(buf, pos, raw_bytes, max_header_bytes, max_body_bytes)`` returns
 * (method, target, version, headers, body size, body SHA-256 hex, body prefix, keep-alive, end)
 * for the request at ``buf[pos]`` when it is simple and complete, and None for anything else
 * (which the llhttp path then reads from the same byte). "Simple" is exactly the Python
 * version's regular expression and checks: a method of GET POST HEAD PUT DELETE OPTIONS PATCH,
 * a target of "/" and printable ASCII, HTTP/1.0 or 1.1, header lines of a token, a colon and
 * tab or printable ASCII, no repeated header, no Transfer-Encoding, Upgrade or
 * Proxy-Connection, a Connection of close or keep-alive only, at most an 18-digit
 * Content-Length whose body is all in ``buf`` and within the cap. tests/test_scan.py holds the
 * two versions to the same answer on well-formed, mutated and arbitrary input.
 *
 * A botnet sends the same head again and again. What a head gives (method, target, version,
 * the headers dict, its line count, keep-alive, Content-Length) is remembered by the head's
 * bytes, for heads of at most HEAD_MEMO_BYTES, up to HEAD_MEMO_ENTRIES of them (then the memo
 * starts over). A repeated head returns the same target and headers objects as before: callers
 * must not change the dict (the sinkhole never does), and may remember what they derive from it
 * by its identity. The caps and the body are checked on every call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <string.h>

/* The body's SHA-256 comes from OpenSSL, found in the libcrypto that hashlib has already
 * loaded: its SHA256_Init/Update/Final on a context on the stack (the same block code hashlib
 * runs, SHA-NI where the CPU has it, without hashlib's per-call context objects or the
 * algorithm fetch that OpenSSL 3's one-shot SHA256() makes on every call; those cost several
 * times the hashing of a check-in's body), else its one-shot SHA256(). Where neither is
 * found, or what is found does not hash "abc" right at start, hashlib.sha256 as before. */
typedef unsigned char *(*sha256_fn)(const unsigned char *, size_t, unsigned char *);
typedef int (*sha256_init_fn)(void *);
typedef int (*sha256_update_fn)(void *, const void *, size_t);
typedef int (*sha256_final_fn)(unsigned char *, void *);
static sha256_fn openssl_sha256;
static sha256_init_fn ctx_init;
static sha256_update_fn ctx_update;
static sha256_final_fn ctx_final;
/* OpenSSL's SHA256_CTX is 112 bytes (8 + 2 + 16 + 2 words); room to spare, aligned. */
typedef struct {
    _Alignas(16) unsigned char opaque[256];
} sha256_ctx;
static unsigned char *ctx_sha256(const unsigned char *data, size_t len, unsigned char *md) {
    sha256_ctx ctx;
    if (!ctx_init(&ctx) || !ctx_update(&ctx, data, len) || !ctx_final(md, &ctx)) return NULL;
    return md;
}
#define RELEASE_GIL_FROM 65536 /* hash bodies this big without the GIL */
static PyObject *hex_of(const unsigned char md[32]);

static PyObject *sha256_new;   /* hashlib.sha256 */
static PyObject *empty_sha;    /* hex digest of b"" */
static PyObject *empty_bytes;  /* b"" */
static PyObject *str_hexdigest;
static PyObject *version_str[2]; /* "1.0", "1.1" */
static PyObject *head_memo;      /* head bytes -> (method, target, version, headers, lines,
                                    keep, Content-Length or -1) */
#define HEAD_MEMO_BYTES 2048
#define HEAD_MEMO_ENTRIES 1024

#define N_METHODS 7
static const char *method_name[N_METHODS] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS",
                                             "PATCH"};
static PyObject *method_str[N_METHODS];

static unsigned char is_token[256];

static void init_tables(void) {
    const char *extra = "!#$%&'*+.^_`|~-";
    for (int c = '0'; c <= '9'; c++) is_token[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) is_token[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) is_token[c] = 1;
    for (const char *p = extra; *p; p++) is_token[(unsigned char)*p] = 1;
}

static inline int is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c <= 0x7e); }

static inline unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Case-insensitive equality of an ASCII span with a lower-case C string. */
static int span_is(const unsigned char *s, Py_ssize_t n, const char *word) {
    Py_ssize_t k = (Py_ssize_t)strlen(word);
    if (n != k) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (lower(s[i]) != (unsigned char)word[i]) return 0;
    }
    return 1;
}

/* The first "\r\n\r\n" at or after pos, or -1. */
static Py_ssize_t find_head_end(const unsigned char *b, Py_ssize_t len, Py_ssize_t pos) {
    Py_ssize_t i = pos;
    while (i + 3 < len) {
        const unsigned char *cr = memchr(b + i, '\r', (size_t)(len - 3 - i));
        if (cr == NULL) return -1;
        i = cr - b;
        if (b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n') return i;
        i++;
    }
    return -1;
}

typedef struct {
    Py_ssize_t name, name_len, value, value_len; /* offsets in buf */
} Header;

#define MAX_STACK_HEADERS 64

static PyObject *scan(Py_buffer *view, Py_ssize_t pos, Py_ssize_t raw_bytes, Py_ssize_t max_header,
                      Py_ssize_t max_body);

/* read_simple(buf, pos, raw_bytes, max_header_bytes, max_body_bytes), by position (the
 * sinkhole's call: no keyword parsing) or by keyword. */
static PyObject *read_simple(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    Py_buffer view;
    Py_ssize_t pos, raw_bytes, max_header, max_body;
    if (kwnames == NULL && nargs == 5) {
        Py_ssize_t v[4];
        for (int i = 0; i < 4; i++) {
            v[i] = PyLong_AsSsize_t(args[i + 1]);
            if (v[i] == -1 && PyErr_Occurred()) return NULL;
        }
        if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
        pos = v[0], raw_bytes = v[1], max_header = v[2], max_body = v[3];
    } else {
        static char *kwlist[] = {"buf", "pos", "raw_bytes", "max_header_bytes",
                                 "max_body_bytes", NULL};
        PyObject *tuple = PyTuple_New(nargs), *dict = NULL;
        if (tuple == NULL) return NULL;
        for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
        Py_ssize_t nk = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        if (nk) {
            dict = PyDict_New();
            for (Py_ssize_t i = 0; dict != NULL && i < nk; i++) {
                if (PyDict_SetItem(dict, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                    Py_CLEAR(dict);
                }
            }
            if (dict == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
        }
        int ok = PyArg_ParseTupleAndKeywords(tuple, dict, "y*nnnn:read_simple", kwlist, &view,
                                             &pos, &raw_bytes, &max_header, &max_body);
        Py_DECREF(tuple);
        Py_XDECREF(dict);
        if (!ok) return NULL;
    }
    return scan(&view, pos, raw_bytes, max_header, max_body);
}

/* The work of read_simple; releases the view. */
static PyObject *scan(Py_buffer *view, Py_ssize_t pos, Py_ssize_t raw_bytes, Py_ssize_t max_header,
                      Py_ssize_t max_body) {
    PyObject *result = NULL;
    Header stack_headers[MAX_STACK_HEADERS];
    Header *headers = stack_headers;
    PyObject *hdict = NULL, *memo_key = NULL;
    const unsigned char *b = (const unsigned char *)view->buf;
    Py_ssize_t len = view->len;
    if (pos < 0 || pos > len) {
        goto none;
    }
    Py_ssize_t end = find_head_end(b, len, pos);
    if (end < 0 || end - pos > max_header) goto none;
    Py_ssize_t stop = end + 4, p = pos;
    PyObject *method_obj, *target_str, *version_obj;
    Py_ssize_t n = 0, length = -1;
    int keep;
    if (stop - pos <= HEAD_MEMO_BYTES) {
        memo_key = PyBytes_FromStringAndSize((const char *)b + pos, stop - pos);
        if (memo_key == NULL) goto fail;
        PyObject *seen = PyDict_GetItemWithError(head_memo, memo_key);
        if (seen == NULL && PyErr_Occurred()) goto fail;
        if (seen != NULL) {
            method_obj = PyTuple_GET_ITEM(seen, 0);
            target_str = Py_NewRef(PyTuple_GET_ITEM(seen, 1));
            version_obj = PyTuple_GET_ITEM(seen, 2);
            hdict = Py_NewRef(PyTuple_GET_ITEM(seen, 3));
            n = PyLong_AsSsize_t(PyTuple_GET_ITEM(seen, 4));
            keep = PyTuple_GET_ITEM(seen, 5) == Py_True;
            length = PyLong_AsSsize_t(PyTuple_GET_ITEM(seen, 6));
            Py_CLEAR(memo_key);
            if (end - pos + (n + 1) + 2 > max_header) {
                Py_DECREF(target_str);
                goto none;
            }
            goto body;
        }
    }

    /* request line: METHOD SP "/" target SP "HTTP/1." [01] CRLF */
    int method = -1;
    for (int m = 0; m < N_METHODS; m++) {
        size_t k = strlen(method_name[m]);
        if ((Py_ssize_t)(p + k) < stop && memcmp(b + p, method_name[m], k) == 0 &&
            b[p + k] == ' ') {
            method = m;
            p += (Py_ssize_t)k + 1;
            break;
        }
    }
    if (method < 0 || b[p] != '/') goto none;
    Py_ssize_t target = p;
    while (p < stop && b[p] >= 0x21 && b[p] <= 0x7e) p++;
    Py_ssize_t target_len = p - target;
    if (stop - p < 11 || memcmp(b + p, " HTTP/1.", 8) != 0) goto none;
    p += 8;
    if (b[p] != '0' && b[p] != '1') goto none;
    int minor = b[p] - '0';
    p++;
    if (b[p] != '\r' || b[p + 1] != '\n') goto none;
    p += 2;

    /* header lines: token ":" value CRLF, then CRLF */
    Py_ssize_t cap = MAX_STACK_HEADERS;
    for (;;) {
        if (p + 1 < stop && b[p] == '\r' && b[p + 1] == '\n') {
            p += 2;
            break;
        }
        Py_ssize_t name = p;
        while (p < stop && is_token[b[p]]) p++;
        if (p == name || p >= stop || b[p] != ':') goto none;
        Py_ssize_t name_len = p - name;
        p++;
        Py_ssize_t value = p;
        while (p < stop && is_value_char(b[p])) p++;
        if (p + 1 >= stop || b[p] != '\r' || b[p + 1] != '\n') goto none;
        Py_ssize_t value_end = p;
        p += 2;
        while (value < value_end && (b[value] == ' ' || b[value] == '\t')) value++;
        if (n == cap) {
            Py_ssize_t bigger = cap * 2;
            Header *grown = PyMem_Malloc((size_t)bigger * sizeof(Header));
            if (grown == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            memcpy(grown, headers, (size_t)n * sizeof(Header));
            if (headers != stack_headers) PyMem_Free(headers);
            headers = grown;
            cap = bigger;
        }
        headers[n].name = name;
        headers[n].name_len = name_len;
        headers[n].value = value;
        headers[n].value_len = value_end - value;
        n++;
    }
    if (p != stop) goto none;
    /* llhttp's count of head bytes stays within the cap when this does (see fastpath.py) */
    if (end - pos + (n + 1) + 2 > max_header) goto none;

    keep = minor == 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *nm = b + headers[i].name, *v = b + headers[i].value;
        Py_ssize_t nl = headers[i].name_len, vl = headers[i].value_len;
        if (span_is(nm, nl, "transfer-encoding") || span_is(nm, nl, "upgrade") ||
            span_is(nm, nl, "proxy-connection")) {
            goto none;
        } else if (span_is(nm, nl, "connection")) {
            if (span_is(v, vl, "close")) {
                keep = 0;
            } else if (span_is(v, vl, "keep-alive")) {
                keep = 1;
            } else {
                goto none;
            }
        } else if (span_is(nm, nl, "content-length")) {
            if (vl < 1 || vl > 18) goto none;
            Py_ssize_t value = 0;
            for (Py_ssize_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9') goto none;
                value = value * 10 + (v[k] - '0');
            }
            length = value;
        }
    }
    /* the head passed: build its part of the answer (and remember it) */
    hdict = _PyDict_NewPresized(n);
    if (hdict == NULL) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        char lowered[256];
        Py_ssize_t nl = headers[i].name_len;
        PyObject *key;
        if (nl <= (Py_ssize_t)sizeof lowered) {
            for (Py_ssize_t k = 0; k < nl; k++) lowered[k] = (char)lower(b[headers[i].name + k]);
            key = PyUnicode_DecodeASCII(lowered, nl, NULL);
        } else {
            char *big = PyMem_Malloc((size_t)nl);
            if (big == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            for (Py_ssize_t k = 0; k < nl; k++) big[k] = (char)lower(b[headers[i].name + k]);
            key = PyUnicode_DecodeASCII(big, nl, NULL);
            PyMem_Free(big);
        }
        if (key == NULL) goto fail;
        PyObject *value = PyUnicode_DecodeASCII((const char *)b + headers[i].value,
                                                headers[i].value_len, NULL);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        int rc = PyDict_SetItem(hdict, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) goto fail;
    }
    /* a repeated name (in any case) fell on an earlier key: left to llhttp, as in Python. A
     * dict, not a comparison of every pair: a head of thousands of tiny headers stays linear. */
    if (PyDict_GET_SIZE(hdict) != n) goto none;
    target_str = PyUnicode_DecodeASCII((const char *)b + target, target_len, NULL);
    if (target_str == NULL) goto fail;
    method_obj = method_str[method];
    version_obj = version_str[minor];
    if (memo_key != NULL) {
        PyObject *entry = Py_BuildValue("(OOOOnOn)", method_obj, target_str, version_obj, hdict, n,
                                        keep ? Py_True : Py_False, length);
        if (entry != NULL && PyDict_GET_SIZE(head_memo) >= HEAD_MEMO_ENTRIES)
            PyDict_Clear(head_memo);
        if (entry == NULL || PyDict_SetItem(head_memo, memo_key, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(target_str);
            goto fail;
        }
        Py_DECREF(entry);
        Py_CLEAR(memo_key);
    }

body:;
    Py_ssize_t body = stop, size = 0;
    if (length >= 0) {
        if (length > max_body || length > len - body) {
            Py_DECREF(target_str);
            goto none;
        }
        size = length;
    }
    PyObject *sha, *prefix;
    if (size == 0) {
        sha = Py_NewRef(empty_sha);
        prefix = Py_NewRef(empty_bytes);
    } else {
        unsigned char md[32], *got = NULL;
        if (openssl_sha256 != NULL) {
            if (size >= RELEASE_GIL_FROM) {
                Py_BEGIN_ALLOW_THREADS
                got = openssl_sha256(b + body, (size_t)size, md);
                Py_END_ALLOW_THREADS
            } else {
                got = openssl_sha256(b + body, (size_t)size, md);
            }
        }
        if (got != NULL) {
            sha = hex_of(md);
        } else { /* no OpenSSL, or it failed (it does not, but then hashlib says why) */
            PyObject *mem = PyMemoryView_FromMemory((char *)b + body, size, PyBUF_READ);
            PyObject *h = mem == NULL ? NULL : PyObject_CallOneArg(sha256_new, mem);
            Py_XDECREF(mem);
            sha = h == NULL ? NULL : PyObject_CallMethodNoArgs(h, str_hexdigest);
            Py_XDECREF(h);
        }
        if (sha == NULL) {
            Py_DECREF(target_str);
            goto fail;
        }
        /* body[:raw_bytes], Python's slice (a negative bound counts from the end) */
        Py_ssize_t keep_bytes = raw_bytes >= 0 ? (size < raw_bytes ? size : raw_bytes)
                                               : (size + raw_bytes > 0 ? size + raw_bytes : 0);
        prefix = PyBytes_FromStringAndSize((const char *)b + body, keep_bytes);
        if (prefix == NULL) {
            Py_DECREF(target_str);
            Py_DECREF(sha);
            goto fail;
        }
    }
    result = Py_BuildValue("(ONONnNNOn)", method_obj, target_str, version_obj, hdict, size, sha,
                           prefix, keep ? Py_True : Py_False, body + size);
    hdict = NULL; /* stolen by N */
    goto done;

none:
    result = Py_NewRef(Py_None);
    goto done;
fail:
    result = NULL;
done:
    Py_XDECREF(hdict);
    Py_XDECREF(memo_key);
    if (headers != stack_headers) PyMem_Free(headers);
    PyBuffer_Release(view);
    return result;
}

static PyObject *hex_of(const unsigned char md[32]) {
    static const char digits[] = "0123456789abcdef";
    PyObject *s = PyUnicode_New(64, 127);
    if (s == NULL) return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(s);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = (Py_UCS1)digits[md[i] >> 4];
        out[2 * i + 1] = (Py_UCS1)digits[md[i] & 15];
    }
    return s;
}

static int hashes_abc(sha256_fn fn) {
    static const unsigned char abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char md[32];
    return fn((const unsigned char *)"abc", 3, md) == md && memcmp(md, abc, 32) == 0;
}

/* OpenSSL's SHA-256 from the libcrypto already in the process (hashlib's): the context
 * functions if they hash "abc" to the FIPS 180-2 answer, else the one-shot SHA256() if it
 * does. */
static sha256_fn find_openssl_sha256(void) {
    static const char *names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_NOLOAD);
        if (lib == NULL) continue;
        ctx_init = (sha256_init_fn)dlsym(lib, "SHA256_Init");
        ctx_update = (sha256_update_fn)dlsym(lib, "SHA256_Update");
        ctx_final = (sha256_final_fn)dlsym(lib, "SHA256_Final");
        if (ctx_init != NULL && ctx_update != NULL && ctx_final != NULL && hashes_abc(ctx_sha256))
            return ctx_sha256; /* the handle stays open: the library is hashlib's, for good */
        sha256_fn fn = (sha256_fn)dlsym(lib, "SHA256");
        if (fn != NULL && hashes_abc(fn)) return fn;
        dlclose(lib);
    }
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_simple", (PyCFunction)(void (*)(void))read_simple, METH_FASTCALL | METH_KEYWORDS,
     "read_simple(buf, pos, raw_bytes, max_header_bytes, max_body_bytes): the simple,\n"
     "complete request at buf[pos] as fastpath.read_simple returns it, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "takedown.sinkhole._scan",
    .m_doc = "The sinkhole's fast request reader (fastpath.read_simple) in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__scan(void) {
    init_tables();
    PyObject *hashlib = PyImport_ImportModule("hashlib");
    if (hashlib == NULL) return NULL;
    sha256_new = PyObject_GetAttrString(hashlib, "sha256");
    Py_DECREF(hashlib);
    if (sha256_new == NULL) return NULL;
    str_hexdigest = PyUnicode_InternFromString("hexdigest");
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    if (str_hexdigest == NULL || empty_bytes == NULL) return NULL;
    PyObject *h = PyObject_CallOneArg(sha256_new, empty_bytes);
    if (h == NULL) return NULL;
    empty_sha = PyObject_CallMethodNoArgs(h, str_hexdigest);
    Py_DECREF(h);
    if (empty_sha == NULL) return NULL;
    head_memo = PyDict_New();
    if (head_memo == NULL) return NULL;
    openssl_sha256 = find_openssl_sha256();
    version_str[0] = PyUnicode_InternFromString("1.0");
    version_str[1] = PyUnicode_InternFromString("1.1");
    if (version_str[0] == NULL || version_str[1] == NULL) return NULL;
    for (int m = 0; m < N_METHODS; m++) {
        method_str[m] = PyUnicode_InternFromString(method_name[m]);
        if (method_str[m] == NULL) return NULL;
    }
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    /* Which of OpenSSL's SHA-256 functions hash the bodies ("" for hashlib). */
    const char *which = openssl_sha256 == NULL        ? ""
                        : openssl_sha256 == ctx_sha256 ? "SHA256_Init/Update/Final"
                                                       : "SHA256";
    if (PyModule_AddStringConstant(mod, "OPENSSL_SHA256", which) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
