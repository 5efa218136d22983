/* The chat stream's bulk rewrite in one pass (gateway/apis/chat/adapt.py, `_plain`).

   rewrite(events, seen, literal, markers) -> (out, stop)

   Walks `events` (whole SSE events, as the upstream wrote them) event by event and
   copies them to `out`, each occurrence of `seen` (the upstream's `"model":"..."`)
   written as `literal` (the client's). It stops at the first event that is not plain:
   not one line `data: {...}` followed by a blank line, one holding a `"model"` key
   written otherwise than `seen`, or one holding any of `markers` (a finish reason, a
   usage object, a provider key...). `stop` is where that event starts: `out` is
   events[:stop] rewritten, and the caller rewrites the rest the long way. CPython's
   substring search costs 0.3-0.8 ns a byte for each question asked of a stream; this
   asks them all in one pass.

   hatch_build.py compiles it when the gateway is installed: after an edit here, install
   again (`pip install -e .`). tests/apis/chat/test_plain_events.py checks that streams
   come out the same with it and without it. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_NEEDLES 15  /* markers; the model key makes one more */

/* Sixteen bytes at a time, in GCC's and Clang's vector extension: SSE2 on x86-64, NEON
   on ARM, plain code elsewhere. A quote is one byte in eight of a chunk's JSON, so a
   search that stops at each byte a needle starts with stops all the time; this one
   stops only where a needle's first two bytes are, a few times an event. */
typedef unsigned char bytes16 __attribute__((vector_size(16)));
typedef signed char mask16 __attribute__((vector_size(16)));

typedef struct {
    const char *bytes;
    Py_ssize_t size;
    bytes16 first, second;  /* its first two bytes, in each lane */
} needle;

typedef struct {
    needle items[MAX_NEEDLES + 1];  /* the markers, then the model key */
    int count;
} needles;

static void
set(needle *n, const char *bytes, Py_ssize_t size)
{
    n->bytes = bytes;
    n->size = size;
    for (int lane = 0; lane < 16; lane++) {
        n->first[lane] = (unsigned char)bytes[0];
        n->second[lane] = (unsigned char)bytes[1];  /* needles are 2 bytes or longer */
    }
}

static inline int
starts_here(const needle *n, const char *p)
{
    return p[0] == n->bytes[0] && p[1] == n->bytes[1];
}

/* A bit for each of the 16 places from p where a needle's first two bytes are. Reads
   p[0..16]. */
static inline unsigned
candidates(const char *p, const needles *ns)
{
    bytes16 here, next;
    memcpy(&here, p, 16);
    memcpy(&next, p + 1, 16);
    mask16 hit = {0};
    for (int i = 0; i < ns->count; i++)
        hit |= (here == ns->items[i].first) & (next == ns->items[i].second);
#if defined(__SSE2__)
    return (unsigned)_mm_movemask_epi8((__m128i)hit);
#else
    uint64_t halves[2];
    memcpy(halves, &hit, 16);
    unsigned bits = 0;
    if (halves[0] | halves[1]) {
        for (int lane = 0; lane < 16; lane++)
            bits |= hit[lane] ? 1u << lane : 0u;
    }
    return bits;
#endif
}

/* The same for the places from p to end (fewer than 17): one at a time. p[1] may be read
   at end - 1: `end` is the '\n' that ends the event. */
static inline unsigned
candidates_near(const char *p, const char *end, const needles *ns)
{
    unsigned bits = 0;
    for (int lane = 0; p + lane < end; lane++) {
        for (int i = 0; i < ns->count; i++) {
            if (starts_here(&ns->items[i], p + lane)) {
                bits |= 1u << lane;
                break;
            }
        }
    }
    return bits;
}

static PyObject *
rewrite(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer events, seen, literal;
    PyObject *markers;
    if (!PyArg_ParseTuple(args, "y*y*y*O!", &events, &seen, &literal, &PyTuple_Type, &markers))
        return NULL;
    PyObject *result = NULL;
    PyObject *text = NULL;  /* the output, made at its longest and cut to length at the end */
    static const char model_key[] = "\"model\"";
    const Py_ssize_t model_size = sizeof(model_key) - 1;
    const Py_ssize_t count = PyTuple_GET_SIZE(markers);
    needles ns;
    if (count > MAX_NEEDLES || seen.len < model_size
            || memcmp(seen.buf, model_key, (size_t)model_size) != 0) {
        PyErr_SetString(PyExc_ValueError, "at most 15 markers, and `seen` a model key");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(markers, i);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) < 2) {
            PyErr_SetString(PyExc_ValueError, "markers are bytes of 2 or more");
            goto done;
        }
        set(&ns.items[i], PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item));
    }
    const int model = (int)count;
    set(&ns.items[model], model_key, model_size);
    ns.count = model + 1;

    const char *data = events.buf;
    const Py_ssize_t size = events.len;
    /* At most as long as the input with a rewritten model key at every `seen.len` bytes. */
    Py_ssize_t grow = literal.len > seen.len ? literal.len - seen.len : 0;
    text = PyBytes_FromStringAndSize(NULL, size + (size / seen.len + 1) * grow);
    if (text == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(text);
    Py_ssize_t written = 0, stop = 0;
    while (stop < size) {
        const char *start = data + stop;
        const char *end = data + size;
        if (end - start < 7 || memcmp(start, "data: {", 7) != 0)
            break;
        const char *line_end = memchr(start, '\n', (size_t)(end - start));
        if (line_end == NULL || line_end + 1 >= end || line_end[1] != '\n' || line_end[-1] != '}')
            break;
        const Py_ssize_t event_written = written;
        const char *copied = start;  /* what is before it is in `out` */
        const char *p = start;
        int plain = 1;
        while (plain && p < line_end) {
            /* p is where the search goes on: past a model key just rewritten, its bits are
               behind it. */
            const char *block = p;
            const int full = line_end - block >= 17;
            unsigned bits = full ? candidates(block, &ns) : candidates_near(block, line_end, &ns);
            const char *next = full ? block + 16 : line_end;
            while (bits && plain) {
                const char *at = block + __builtin_ctz(bits);
                bits &= bits - 1;
                if (at < p)
                    continue;
                int found = -1;
                for (int i = 0; i <= model && found < 0; i++) {
                    const needle *n = &ns.items[i];
                    if (starts_here(n, at) && line_end - at >= n->size
                            && memcmp(at, n->bytes, (size_t)n->size) == 0)
                        found = i;
                }
                if (found < 0)
                    continue;
                if (found != model || line_end - at < seen.len
                        || memcmp(at, seen.buf, (size_t)seen.len) != 0) {
                    plain = 0;  /* a marker, or the model written otherwise */
                } else {
                    memcpy(out + written, copied, (size_t)(at - copied));
                    written += at - copied;
                    memcpy(out + written, literal.buf, (size_t)literal.len);
                    written += literal.len;
                    p = copied = at + seen.len;
                }
            }
            if (p < next)
                p = next;
        }
        if (!plain) {
            written = event_written;
            break;
        }
        memcpy(out + written, copied, (size_t)(line_end + 2 - copied));
        written += line_end + 2 - copied;
        stop = line_end + 2 - data;
    }
    if (_PyBytes_Resize(&text, written) == 0)
        result = Py_BuildValue("(Nn)", text, stop);  /* which takes the reference to text */
    text = NULL;
done:
    Py_XDECREF(text);
    PyBuffer_Release(&events);
    PyBuffer_Release(&seen);
    PyBuffer_Release(&literal);
    return result;
}

static PyMethodDef methods[] = {
    {"rewrite", rewrite, METH_VARARGS,
     "rewrite(events, seen, literal, markers) -> (out, stop): the plain events at the start "
     "of `events`, `seen` written as `literal`; `stop` is where the first other event starts."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_events",
    .m_doc = "The chat stream's bulk rewrite in one pass.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__events(void)
{
    PyObject *made = PyModule_Create(&module);
    if (made != NULL && PyModule_AddIntConstant(made, "MAX_MARKERS", MAX_NEEDLES) < 0) {
        Py_DECREF(made);
        return NULL;
    }
    return made;
}
