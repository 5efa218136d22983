/* The chat stream's rewrite in one pass (gateway/apis/chat/adapt.py, `_plain`).

   rewrite(events, seen, literal, markers, keep_usage)
       -> (out, stop, flags, usage_event, learned)

   Walks `events` (whole SSE events, as the upstream wrote them) event by event and
   copies them to `out`, each occurrence of `seen` (the upstream's `"model":"..."`)
   written as `literal` (the client's). An empty `seen` is not known yet: the first
   model key is learned, and `learned` is where it is in `events` and where its name is
   (None if nothing was learned). Along the way it notes, in `flags`, a finish reason (1)
   and the upstream's `data: [DONE]` (2), which is left out. The one event with a usage
   object is copied if `keep_usage`, else left out, and `usage_event` is where it is in
   `events`, and where it is (or would be) in `out`, for the adapter to read its usage.

   It stops at the first event that is not plain: not one line `data: {...}` followed
   by a blank line; one holding a `"model"` key written otherwise than `seen` (or, to
   learn, with an escape or a marker in its name), a finish reason outside OpenAI's set,
   a second usage object, or any of `markers` (a provider key, a reasoning key to
   rename...). `stop` is where that event starts: `out` is events[:stop] rewritten, and
   the caller rewrites the rest the long way. CPython's substring search costs 0.3-0.8 ns
   a byte for each question asked of a stream; this asks them all in one pass.

   hatch_build.py compiles it when the gateway is installed: after an edit here, install
   again (`pip install -e .`). tests/apis/chat/test_plain_events.py checks that streams
   come out the same with it and without it. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_MARKERS 15
#define MAX_NEEDLES (MAX_MARKERS + 3)  /* the finish reason, usage and model keys */

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
    /* Its first and last 8 bytes (the first `size`, if fewer, and a mask for them), to
       tell a match from a near one without a call to memcmp. */
    uint64_t head, tail, mask;
} needle;

typedef struct {
    needle items[MAX_NEEDLES];  /* the markers, then the finish reason, usage and model keys */
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
    n->head = n->tail = 0;
    n->mask = size >= 8 ? ~(uint64_t)0 : 0;
    memcpy(&n->head, bytes, size >= 8 ? 8 : (size_t)size);
    if (size >= 8)
        memcpy(&n->tail, bytes + size - 8, 8);
    else
        memcpy(&n->mask, "\xff\xff\xff\xff\xff\xff\xff", (size_t)size);  /* its first `size` bytes */
}

static inline int
starts_here(const needle *n, const char *p)
{
    return p[0] == n->bytes[0] && p[1] == n->bytes[1];
}

/* Whether the needle is at `at`, wholly before `end`. */
static inline int
is_at(const needle *n, const char *at, const char *end)
{
    if (end - at < 8 || end - at < n->size)
        return end - at >= n->size && memcmp(at, n->bytes, (size_t)n->size) == 0;
    uint64_t head, tail;
    memcpy(&head, at, 8);
    if ((head & n->mask) != n->head)
        return 0;
    if (n->size <= 8)
        return 1;
    memcpy(&tail, at + n->size - 8, 8);
    return tail == n->tail && (n->size <= 16 || memcmp(at + 8, n->bytes + 8, (size_t)n->size - 16) == 0);
}

/* A bit for each of the 16 places from p where a needle's first two bytes are. Reads
   p[0..16]. */
static inline unsigned
bits_of(mask16 hit)
{
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

static inline unsigned
candidates(const char *p, const needles *ns)
{
    bytes16 here, next;
    memcpy(&here, p, 16);
    memcpy(&next, p + 1, 16);
    mask16 hit = {0};
    for (int i = 0; i < ns->count; i++)
        hit |= (here == ns->items[i].first) & (next == ns->items[i].second);
    return bits_of(hit);
}

/* The same for four needles (or fewer, repeated) whose first two bytes the caller holds
   in locals: in registers through the read, not loaded from the needles for each block,
   which costs a third more. */
static inline unsigned
candidates4(const char *p, bytes16 f0, bytes16 s0, bytes16 f1, bytes16 s1, bytes16 f2,
            bytes16 s2, bytes16 f3, bytes16 s3)
{
    bytes16 here, next;
    memcpy(&here, p, 16);
    memcpy(&next, p + 1, 16);
    return bits_of(((here == f0) & (next == s0)) | ((here == f1) & (next == s1))
                   | ((here == f2) & (next == s2)) | ((here == f3) & (next == s3)));
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

/* After a key's closing quote: its value, past the colon and any spaces; NULL where no
   colon follows (the name was a string value, not a key). */
static const char *
value_of(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p >= end || *p != ':')
        return NULL;
    for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    return p < end ? p : NULL;
}

static inline int
is_word(const char *p, const char *end, const char *word, size_t size)
{
    return (size_t)(end - p) >= size && memcmp(p, word, size) == 0;
}

/* A finish reason's value: 0 for null, 1 for one of OpenAI's reasons (passed as it is),
   -1 for anything else (which the long way maps). */
static int
finish_value(const char *p, const char *end)
{
    static const char *const reasons[] = {
        "\"stop\"", "\"length\"", "\"tool_calls\"", "\"content_filter\"", "\"function_call\""};
    if (is_word(p, end, "null", 4))
        return 0;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (is_word(p, end, reasons[i], strlen(reasons[i])))
            return 1;
    }
    return -1;
}

/* A usage key's value: 0 for null, 1 for an object, -1 for anything else. */
static int
usage_value(const char *p, const char *end)
{
    if (is_word(p, end, "null", 4))
        return 0;
    return *p == '{' ? 1 : -1;
}

/* The end of the model key at `at` and its string value (past its closing quote), if the
   value holds no escape; NULL otherwise (the long way reads it). */
static const char *
model_end(const char *at, const char *end)
{
    const char *value = value_of(at + 7, end);
    if (value == NULL || *value != '"')
        return NULL;
    for (const char *q = value + 1; q < end; q++) {
        if (*q == '"')
            return q + 1;
        if (*q == '\\')
            return NULL;
    }
    return NULL;
}

static const char done_event[] = "data: [DONE]\n\n";
#define DONE_SIZE ((Py_ssize_t)sizeof(done_event) - 1)

static PyObject *
rewrite(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer events, seen, literal;
    PyObject *markers;
    int keep_usage;
    if (!PyArg_ParseTuple(args, "y*y*y*O!p", &events, &seen, &literal, &PyTuple_Type, &markers,
                          &keep_usage))
        return NULL;
    PyObject *result = NULL;
    PyObject *text = NULL;  /* the output, made at its longest and cut to length at the end */
    static const char model_key[] = "\"model\"";
    static const char finish_key[] = "\"finish_reason\"";
    static const char usage_key[] = "\"usage\"";
    const Py_ssize_t model_size = sizeof(model_key) - 1;
    const Py_ssize_t count = PyTuple_GET_SIZE(markers);
    needles ns;
    if (count > MAX_MARKERS || (seen.len > 0 && (seen.len < model_size
            || memcmp(seen.buf, model_key, (size_t)model_size) != 0))) {
        PyErr_SetString(PyExc_ValueError, "at most 15 markers, and `seen` a model key or empty");
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
    /* The markers first: a marker found where a key starts stops the helper. The model's
       needle is `seen`; until it is known, any model key, whose first is learned. */
    const int finish = (int)count, usage = finish + 1, model = usage + 1;
    set(&ns.items[finish], finish_key, sizeof(finish_key) - 1);
    set(&ns.items[usage], usage_key, sizeof(usage_key) - 1);
    const char *seen_bytes = seen.len ? seen.buf : NULL;
    Py_ssize_t seen_size = seen.len;
    needle model_needle;  /* any model key: one that is not `seen` stops the helper */
    set(&model_needle, model_key, model_size);
    ns.items[model] = model_needle;
    if (seen_bytes != NULL)
        set(&ns.items[model], seen_bytes, seen_size);
    ns.count = model + 1;
    const int four = ns.count <= 4;  /* (a secret, the finish reason, usage and model keys) */
#define FIRST(k) ns.items[(k) < ns.count ? (k) : 0].first
#define SECOND(k) ns.items[(k) < ns.count ? (k) : 0].second
    const bytes16 f0 = FIRST(0), s0 = SECOND(0), f1 = FIRST(1), s1 = SECOND(1),
                  f2 = FIRST(2), s2 = SECOND(2), f3 = FIRST(3), s3 = SECOND(3);
#undef FIRST
#undef SECOND

    const char *data = events.buf;
    const Py_ssize_t size = events.len;
    /* An event's rewrite is at most as long as the event with a longer model key at every
       `seen` (10 bytes or more: `"model":""`). The output starts at the input's size and a
       little more, and grows where an event could take it past that: a buffer of the worst
       case's size for a whole read would be the larger block of memory that the allocator
       maps afresh each time. */
    Py_ssize_t capacity = size + (literal.len > 10 ? size / 16 + 256 : 0);
    text = PyBytes_FromStringAndSize(NULL, capacity);
    if (text == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(text);
    Py_ssize_t written = 0, stop = 0;
    int finished = 0, ended = 0;
    /* The usage event, if one was taken: where it is in `events`, and in `out` (where it
       would be, if it was left out). */
    Py_ssize_t usage_start = -1, usage_end = -1, usage_out = -1;
    while (stop < size) {
        const char *start = data + stop;
        const char *end = data + size;
        if (end - start < 7 || memcmp(start, "data: {", 7) != 0) {
            if (end - start < DONE_SIZE || memcmp(start, done_event, DONE_SIZE) != 0)
                break;
            ended = 1;  /* the upstream's [DONE] is left out: the relay writes its own */
            stop += DONE_SIZE;
            continue;
        }
        const char *line_end = memchr(start, '\n', (size_t)(end - start));
        if (line_end == NULL || line_end + 1 >= end || line_end[1] != '\n' || line_end[-1] != '}')
            break;
        const Py_ssize_t length = line_end + 2 - start;
        const Py_ssize_t key = seen_bytes != NULL ? seen_size : 10;
        const Py_ssize_t grow = literal.len > key ? literal.len - key : 0;
        const Py_ssize_t longest = written + length + (length / key + 1) * grow;
        if (longest > capacity) {
            capacity = longest > 2 * capacity ? longest : 2 * capacity;
            if (_PyBytes_Resize(&text, capacity) < 0)
                goto done;  /* which freed text */
            out = PyBytes_AS_STRING(text);
        }
        const Py_ssize_t event_written = written;
        const char *copied = start;  /* what is before it is in `out` */
        const char *p = start;
        int plain = 1, event_finished = 0, event_usage = 0, learned = 0;
        while (plain && p < line_end) {
            /* p is where the search goes on: past a model key just rewritten, its bits are
               behind it. */
            const char *block = p;
            const int full = line_end - block >= 17;
            unsigned bits = !full ? candidates_near(block, line_end, &ns)
                : four ? candidates4(block, f0, s0, f1, s1, f2, s2, f3, s3)
                : candidates(block, &ns);
            const char *next = full ? block + 16 : line_end;
            while (bits && plain) {
                const char *at = block + __builtin_ctz(bits);
                bits &= bits - 1;
                if (at < p)
                    continue;
                int found = -1;
                for (int i = 0; i < ns.count && found < 0; i++) {
                    const needle *n = &ns.items[i];
                    if (starts_here(n, at) && is_at(n, at, line_end))
                        found = i;
                }
                if (found < 0) {
                    if (is_at(&model_needle, at, line_end))
                        plain = 0;  /* the model written otherwise */
                    continue;
                }
                if (found == finish || found == usage) {
                    const char *value = value_of(at + ns.items[found].size, line_end);
                    int kind = value == NULL ? -1 : found == finish
                        ? finish_value(value, line_end) : usage_value(value, line_end);
                    if (kind < 0 || (found == usage && kind && usage_start >= 0))
                        plain = 0;  /* a reason to map, or a second usage: the long way */
                    else if (found == finish)
                        event_finished |= kind;
                    else
                        event_usage |= kind;
                    continue;
                }
                if (found != model) {
                    plain = 0;  /* a marker */
                    continue;
                }
                if (seen_bytes == NULL) {  /* the first model key: the one to look for */
                    const char *key_end = model_end(at, line_end);
                    for (int i = 0; key_end != NULL && i < (int)count; i++) {
                        const needle *n = &ns.items[i];
                        for (const char *q = at; key_end != NULL && q < key_end; q++) {
                            if (line_end - q >= n->size && memcmp(q, n->bytes, (size_t)n->size) == 0)
                                key_end = NULL;  /* a marker in the name: the long way */
                        }
                    }
                    if (key_end == NULL) {
                        plain = 0;
                        continue;
                    }
                    seen_bytes = at;
                    seen_size = key_end - at;
                    set(&ns.items[model], seen_bytes, seen_size);
                    learned = 1;
                }
                memcpy(out + written, copied, (size_t)(at - copied));
                written += at - copied;
                memcpy(out + written, literal.buf, (size_t)literal.len);
                written += literal.len;
                p = copied = at + seen_size;
            }
            if (p < next)
                p = next;
        }
        if (!plain) {
            written = event_written;
            if (learned) {  /* learned from an event the long way takes: it learns it too */
                seen_bytes = NULL;
                seen_size = 0;
                ns.items[model] = model_needle;
            }
            break;
        }
        const Py_ssize_t event_start = stop;
        stop = line_end + 2 - data;
        finished |= event_finished;
        if (event_usage) {
            usage_start = event_start;
            usage_end = stop;
            usage_out = event_written;
            if (!keep_usage) {
                written = event_written;
                continue;
            }
        }
        memcpy(out + written, copied, (size_t)(line_end + 2 - copied));
        written += line_end + 2 - copied;
    }
    if (_PyBytes_Resize(&text, written) == 0) {
        /* Py_BuildValue takes the reference to text. The model key learned, if it was:
           where it is in `events`, and its value (between the quotes). */
        const int flags = finished | ended << 1;
        PyObject *learned_key = Py_None;
        Py_INCREF(Py_None);
        if (seen.len == 0 && seen_bytes != NULL) {
            Py_DECREF(Py_None);
            const char *quote = seen_bytes + seen_size - 1;
            const char *open = value_of(seen_bytes + model_size, quote + 1);
            learned_key = Py_BuildValue("(nnnn)", seen_bytes - data, seen_bytes + seen_size - data,
                                        open + 1 - data, quote - data);
        }
        if (learned_key == NULL)
            Py_DECREF(text);
        else if (usage_start < 0)
            result = Py_BuildValue("(NniON)", text, stop, flags, Py_None, learned_key);
        else
            result = Py_BuildValue("(Nni(nnn)N)", text, stop, flags, usage_start, usage_end,
                                   usage_out, learned_key);
    }
    text = NULL;
done:
    Py_XDECREF(text);
    PyBuffer_Release(&events);
    PyBuffer_Release(&seen);
    PyBuffer_Release(&literal);
    return result;
}

/* The length of the valid UTF-8 character at p (before end), 0 if there is none: as
   strict as orjson and CPython (no overlong forms, no surrogates, nothing past U+10FFFF). */
static int
utf8_char(const unsigned char *p, const unsigned char *end)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        return end - p >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0))
            return 0;  /* overlong, or a surrogate */
        return 3;
    }
    if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80
                || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))
            return 0;  /* overlong, or past U+10FFFF */
        return 4;
    }
    return 0;
}

/* Where the JSON string at p ends (past its closing quote), if it is one that needs no
   decoding: no escape, no control character, valid UTF-8. NULL for any other. */
static const char *
plain_string(const char *p, const char *end)
{
    if (p >= end || *p != '"')
        return NULL;
    const unsigned char *q = (const unsigned char *)p + 1, *stop = (const unsigned char *)end;
    while (q < stop) {
        if (*q == '"')
            return (const char *)q + 1;
        if (*q == '\\' || *q < 0x20)
            return NULL;
        int size = utf8_char(q, stop);
        if (size == 0)
            return NULL;
        q += size;
    }
    return NULL;
}

/* deltas(events, at, prefix, suffix, head, tail, number) -> (out, count, end, number, text)

   A converted stream's bulk (gateway/apis/chat/chunks.py): from `at`, each event that is
   one line `prefix` + a JSON string + `suffix` (the chunk of a text delta alone, as the
   upstream writes it) and a blank line, written as the client's text delta: `head` + the
   string + `tail`, with `,"sequence_number":N` before the tail where `number` is not
   negative (counting up from it). An empty string writes nothing. It stops at the first
   other event, or at a string that needs decoding. `count` is how many events it took,
   `end` where the next starts, `number` the next number, and `text` their text, joined. */
static PyObject *
deltas(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer events, prefix, suffix, head, tail;
    Py_ssize_t at, number;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*y*n", &events, &at, &prefix, &suffix, &head, &tail,
                          &number))
        return NULL;
    PyObject *result = NULL, *text = NULL, *joined = NULL;
    const char *data = events.buf, *end = data + events.len;
    const char *p = data + (at < 0 ? 0 : at > events.len ? events.len : at);
    /* The first pass finds how far the plain events go and how much they write. */
    Py_ssize_t count = 0, size = 0, chars = 0;
    for (const char *q = p; q < end; count++) {
        const char *line_end = memchr(q, '\n', (size_t)(end - q));
        if (line_end == NULL || line_end + 1 >= end || line_end[1] != '\n'
                || line_end - q < prefix.len + suffix.len + 2
                || memcmp(q, prefix.buf, (size_t)prefix.len) != 0
                || memcmp(line_end - suffix.len, suffix.buf, (size_t)suffix.len) != 0)
            break;
        const char *string = q + prefix.len;
        if (plain_string(string, line_end - suffix.len) != line_end - suffix.len)
            break;
        const Py_ssize_t length = line_end - suffix.len - string;
        if (length > 2) {
            size += head.len + length + tail.len + (number >= 0 ? 40 : 0);
            chars += length - 2;
        }
        q = line_end + 2;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    joined = PyBytes_FromStringAndSize(NULL, chars);
    if (out == NULL || joined == NULL) {
        Py_XDECREF(out);
        goto done;
    }
    char *write = PyBytes_AS_STRING(out), *letters = PyBytes_AS_STRING(joined);
    for (Py_ssize_t k = 0; k < count; k++) {
        const char *line_end = memchr(p, '\n', (size_t)(end - p));
        const char *string = p + prefix.len;
        const Py_ssize_t length = line_end - suffix.len - string;
        if (length > 2) {
            memcpy(write, head.buf, (size_t)head.len);
            write += head.len;
            memcpy(write, string, (size_t)length);
            write += length;
            if (number >= 0)
                write += sprintf(write, ",\"sequence_number\":%zd", number++);
            memcpy(write, tail.buf, (size_t)tail.len);
            write += tail.len;
            memcpy(letters, string + 1, (size_t)length - 2);
            letters += length - 2;
        }
        p = line_end + 2;
    }
    if (_PyBytes_Resize(&out, write - PyBytes_AS_STRING(out)) < 0)
        goto done;
    text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(joined), chars, "strict");
    if (text == NULL) {
        Py_DECREF(out);
        goto done;
    }
    result = Py_BuildValue("(NnnnN)", out, count, p - data, number, text);
done:
    Py_XDECREF(joined);
    PyBuffer_Release(&events);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&suffix);
    PyBuffer_Release(&head);
    PyBuffer_Release(&tail);
    return result;
}

static PyMethodDef methods[] = {
    {"rewrite", rewrite, METH_VARARGS,
     "rewrite(events, seen, literal, markers, keep_usage) -> (out, stop, flags, usage_event, "
     "learned): the plain events at the start of `events`, `seen` written as `literal`; "
     "`stop` is where the first other event starts."},
    {"deltas", deltas, METH_VARARGS,
     "deltas(events, at, prefix, suffix, head, tail, number) -> (out, count, end, number, text): a "
     "converted stream's text deltas, each written as the client's."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_events",
    .m_doc = "The chat stream's rewrite in one pass.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__events(void)
{
    PyObject *made = PyModule_Create(&module);
    if (made != NULL && PyModule_AddIntConstant(made, "MAX_MARKERS", MAX_MARKERS) < 0) {
        Py_DECREF(made);
        return NULL;
    }
    return made;
}
