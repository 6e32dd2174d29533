/*
 * lean_p2p_records.c - the loop thread's decoder of drained ring records, and its
 * drain call (Python extension module lean_p2p.native._records).
 *
 * Loop thread only, with the GIL held throughout: it builds Python objects. One call
 * decodes a whole drained batch, so the per-event cost is that of making the event's
 * objects, not of running Python bytecode (lean_p2p/native/records.py has the pure
 * Python twin this must agree with; tests/native/test_records.py runs both).
 *
 * Events are instances of the Python class lean_p2p.native.records.NativeEvent, a
 * frozen dataclass with __slots__. Its frozen __setattr__ and generated __init__ cost
 * more than everything else here, so the decoder allocates the instance with the
 * type's tp_alloc and stores each field straight into its slot, at the offset the
 * class's own member descriptor gives. configure() checks the class once: every field
 * must be an object slot (T_OBJECT_EX) of that very class, else it refuses, and the
 * caller keeps the Python decoder.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

#include "lean_p2p.h"

#define FIELD_COUNT 5
/* A routing table cell for "no lane is meant for this event". */
#define UNROUTABLE 0xFF

/* Order of the offsets below. */
static const char *const FIELD_NAMES[FIELD_COUNT] = {
    "kind", "channel", "request_id", "peer_id", "payload",
};
enum { FIELD_KIND, FIELD_CHANNEL, FIELD_REQUEST_ID, FIELD_PEER_ID, FIELD_PAYLOAD };

/* What configure() learnt; NULL event_type until it succeeded. The loop thread is the
 * only caller, and every call holds the GIL, so plain statics are safe. */
static PyTypeObject *event_type = NULL;
static Py_ssize_t field_offsets[FIELD_COUNT];
static PyObject *kinds[LEAN_P2P_EVENT_KIND_MAX + 1]; /* index: kind value; [0] unused */

static int read_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset) {
    PyObject *descriptor = PyDict_GetItemString(type->tp_dict, name); /* borrowed */
    if (descriptor == NULL || Py_TYPE(descriptor) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ field", type->tp_name, name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY) != 0 ||
        ((PyDescrObject *)descriptor)->d_type != type) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a plain object slot of the class",
                     type->tp_name, name);
        return -1;
    }
    *offset = member->offset;
    return 0;
}

PyDoc_STRVAR(configure_doc,
             "configure(event_type, kinds)\n--\n\n"
             "Bind the decoder to the event class and the kind values (a tuple indexed by\n"
             "kind code, entry 0 unused). Raises TypeError if the class's layout is not\n"
             "the one this decoder writes.");

static PyObject *configure(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *type_object;
    PyObject *kind_tuple;
    if (!PyArg_ParseTuple(args, "O!O!:configure", &PyType_Type, &type_object, &PyTuple_Type,
                          &kind_tuple)) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)type_object;
    if (PyTuple_GET_SIZE(kind_tuple) != LEAN_P2P_EVENT_KIND_MAX + 1) {
        PyErr_Format(PyExc_ValueError, "kinds must have %d entries",
                     LEAN_P2P_EVENT_KIND_MAX + 1);
        return NULL;
    }
    if (type->tp_itemsize != 0 || type->tp_alloc == NULL) {
        PyErr_Format(PyExc_TypeError, "%s is not a fixed-size class", type->tp_name);
        return NULL;
    }
    Py_ssize_t offsets[FIELD_COUNT];
    for (int field = 0; field < FIELD_COUNT; field++) {
        if (read_offset(type, FIELD_NAMES[field], &offsets[field]) < 0) {
            return NULL;
        }
    }
    for (int kind = 0; kind <= LEAN_P2P_EVENT_KIND_MAX; kind++) {
        PyObject *value = PyTuple_GET_ITEM(kind_tuple, kind);
        Py_XSETREF(kinds[kind], Py_NewRef(value));
    }
    memcpy(field_offsets, offsets, sizeof(offsets));
    Py_XSETREF(event_type, (PyTypeObject *)Py_NewRef(type));
    Py_RETURN_NONE;
}

static inline void set_field(PyObject *event, int field, PyObject *value) {
    /* A fresh instance's slots are NULL: a plain store hands over our reference. */
    *(PyObject **)((char *)event + field_offsets[field]) = value;
}

/* Reads records one after another; the last peer id is reused when the next record
 * carries the same bytes (a batch usually comes from few peers). */
typedef struct reader {
    const uint8_t *data;
    Py_ssize_t length;
    Py_ssize_t offset;
    PyObject *last_peer_id; /* owned, or NULL */
} reader;

static PyObject *peer_id_object(reader *state, const uint8_t *bytes, uint32_t length) {
    PyObject *last = state->last_peer_id;
    if (last != NULL && PyBytes_GET_SIZE(last) == (Py_ssize_t)length &&
        memcmp(PyBytes_AS_STRING(last), bytes, length) == 0) {
        return Py_NewRef(last);
    }
    PyObject *fresh = PyBytes_FromStringAndSize((const char *)bytes, length);
    if (fresh != NULL) {
        Py_XSETREF(state->last_peer_id, Py_NewRef(fresh));
    }
    return fresh;
}

/* The next record as a new event; its header in *header. NULL with an exception set
 * on a truncated or invalid record. */
static PyObject *next_event(reader *state, lean_p2p_record_header *header) {
    if (state->length - state->offset < (Py_ssize_t)sizeof(*header)) {
        PyErr_Format(PyExc_ValueError, "truncated native record at offset %zd: header cut short",
                     state->offset);
        return NULL;
    }
    memcpy(header, state->data + state->offset, sizeof(*header));
    const uint8_t *peer_id = state->data + state->offset + sizeof(*header);
    Py_ssize_t body = (Py_ssize_t)header->peer_id_len + (Py_ssize_t)header->payload_len;
    if (state->length - state->offset - (Py_ssize_t)sizeof(*header) < body) {
        PyErr_Format(PyExc_ValueError,
                     "truncated native record: %zd bytes needed, %zd given",
                     state->offset + (Py_ssize_t)sizeof(*header) + body, state->length);
        return NULL;
    }
    if (header->kind == 0 || header->kind > LEAN_P2P_EVENT_KIND_MAX) {
        PyErr_Format(PyExc_ValueError, "native record at offset %zd has unknown kind %u",
                     state->offset, header->kind);
        return NULL;
    }
    PyObject *event = event_type->tp_alloc(event_type, 0);
    if (event == NULL) {
        return NULL;
    }
    PyObject *channel = PyLong_FromUnsignedLong(header->channel);
    PyObject *request_id = PyLong_FromUnsignedLongLong(header->request_id);
    PyObject *peer = peer_id_object(state, peer_id, header->peer_id_len);
    PyObject *payload = PyBytes_FromStringAndSize((const char *)peer_id + header->peer_id_len,
                                                  header->payload_len);
    /* Stored even if one failed (NULL slots are legal): the event's dealloc frees the
     * others. */
    set_field(event, FIELD_KIND, Py_NewRef(kinds[header->kind]));
    set_field(event, FIELD_CHANNEL, channel);
    set_field(event, FIELD_REQUEST_ID, request_id);
    set_field(event, FIELD_PEER_ID, peer);
    set_field(event, FIELD_PAYLOAD, payload);
    if (channel == NULL || request_id == NULL || peer == NULL || payload == NULL) {
        Py_DECREF(event);
        return NULL;
    }
    /* The collector need not track the event, as CPython does not track a tuple of
     * atoms: it has no __dict__, its fields are frozen, and it refers only to ints,
     * bytes and an EventKind member, so it can be part of a cycle only if code stores
     * an event in an EventKind member. Untracked, events queued in the lanes add
     * nothing to the collector's passes, which are pauses of the loop thread; this
     * halved the decode's cost (tests/native/test_records.py checks it is untracked). */
    if (PyObject_GC_IsTracked(event)) {
        PyObject_GC_UnTrack(event);
    }
    state->offset += (Py_ssize_t)sizeof(*header) + body;
    return event;
}

static int begin(PyObject *args, const char *format, Py_buffer *view, Py_ssize_t *count,
                 reader *state, PyObject **table, Py_ssize_t *width, Py_ssize_t *lanes) {
    Py_ssize_t used;
    int parsed = table == NULL
                     ? PyArg_ParseTuple(args, format, view, &used, count)
                     : PyArg_ParseTuple(args, format, view, &used, count, &PyBytes_Type, table,
                                        width, lanes);
    if (!parsed) {
        return -1;
    }
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "lean_p2p.native._records is not configured");
    } else if (used < 0 || used > view->len || *count < 0) {
        PyErr_Format(PyExc_ValueError, "bad extent: %zd bytes used of %zd, %zd records", used,
                     view->len, *count);
    } else {
        state->data = view->buf;
        state->length = used;
        state->offset = 0;
        state->last_peer_id = NULL;
        return 0;
    }
    PyBuffer_Release(view);
    return -1;
}

PyDoc_STRVAR(decode_doc,
             "decode(buffer, used, count)\n--\n\n"
             "Decode count packed records from the first used bytes of buffer (any\n"
             "bytes-like object) into a list of events, in order. ValueError for a\n"
             "truncated record or an unknown kind.");

static PyObject *decode(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer view;
    Py_ssize_t count;
    reader state;
    if (begin(args, "y*nn:decode", &view, &count, &state, NULL, NULL, NULL) < 0) {
        return NULL;
    }
    PyObject *events = PyList_New(count);
    for (Py_ssize_t index = 0; events != NULL && index < count; index++) {
        lean_p2p_record_header header;
        PyObject *event = next_event(&state, &header);
        if (event == NULL) {
            Py_CLEAR(events); /* the unfilled items are NULL, which list dealloc skips */
            break;
        }
        PyList_SET_ITEM(events, index, event);
    }
    Py_XDECREF(state.last_peer_id);
    PyBuffer_Release(&view);
    return events;
}

PyDoc_STRVAR(decode_routed_doc,
             "decode_routed(buffer, used, count, table, width, lanes)\n--\n\n"
             "decode(), with each event put in the list of its lane: returns\n"
             "(by_lane, unroutable), by_lane a list of lanes lists in drain order.\n"
             "table holds one byte per (kind, column): the lane index, or 255 for none;\n"
             "the column is the channel, or width - 1 for every channel past width - 2.");

/* Decodes count records of state into by_lane (lanes lists, created here) and
 * unroutable, routing each by cells (one byte per (kind, column)). 0, or -1 with an
 * exception set and both results NULL. */
static int route_records(reader *state, Py_ssize_t count, const uint8_t *cells,
                         Py_ssize_t width, Py_ssize_t lanes, PyObject **by_lane_out,
                         PyObject **unroutable_out) {
    PyObject *by_lane = PyList_New(lanes);
    PyObject *unroutable = PyList_New(0);
    if (by_lane == NULL || unroutable == NULL) {
        goto fail;
    }
    for (Py_ssize_t lane = 0; lane < lanes; lane++) {
        PyObject *group = PyList_New(0);
        if (group == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(by_lane, lane, group);
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        lean_p2p_record_header header;
        PyObject *event = next_event(state, &header);
        if (event == NULL) {
            goto fail;
        }
        Py_ssize_t column =
            header.channel < (uint32_t)(width - 1) ? (Py_ssize_t)header.channel : width - 1;
        uint8_t lane = cells[header.kind * width + column];
        PyObject *target =
            lane < lanes ? PyList_GET_ITEM(by_lane, lane) : unroutable; /* borrowed */
        int appended = PyList_Append(target, event);
        Py_DECREF(event);
        if (appended < 0) {
            goto fail;
        }
    }
    *by_lane_out = by_lane;
    *unroutable_out = unroutable;
    return 0;
fail:
    Py_XDECREF(by_lane);
    Py_XDECREF(unroutable);
    *by_lane_out = NULL;
    *unroutable_out = NULL;
    return -1;
}

static int check_table(PyObject *table, Py_ssize_t width, Py_ssize_t lanes) {
    if (width < 1 || lanes < 1 || lanes >= UNROUTABLE ||
        PyBytes_GET_SIZE(table) != width * (LEAN_P2P_EVENT_KIND_MAX + 1)) {
        PyErr_SetString(PyExc_ValueError, "routing table does not match width and lanes");
        return -1;
    }
    return 0;
}

static PyObject *decode_routed(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer view;
    Py_ssize_t count;
    reader state;
    PyObject *table;
    Py_ssize_t width;
    Py_ssize_t lanes;
    if (begin(args, "y*nnO!nn:decode_routed", &view, &count, &state, &table, &width, &lanes) <
        0) {
        return NULL;
    }
    PyObject *by_lane = NULL;
    PyObject *unroutable = NULL;
    PyObject *result = NULL;
    if (check_table(table, width, lanes) == 0 &&
        route_records(&state, count, (const uint8_t *)PyBytes_AS_STRING(table), width, lanes,
                      &by_lane, &unroutable) == 0) {
        result = PyTuple_Pack(2, by_lane, unroutable);
    }
    Py_XDECREF(by_lane);
    Py_XDECREF(unroutable);
    Py_XDECREF(state.last_peer_id);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(take_doc,
             "take(begin_drain, drain, ring, buffer, limit)\n--\n\n"
             "lean_p2p_ring_begin_drain(ring) (unless begin_drain is 0), then\n"
             "lean_p2p_ring_drain(ring, buffer, len(buffer), limit, &used, &needed), the two\n"
             "functions given by address: returns (count, used, needed). The GIL stays held:\n"
             "neither call waits, and a loop thread that let the GIL go here could wait a\n"
             "whole switch interval for it behind another Python thread.");

typedef void (*begin_drain_function)(lean_p2p_ring *ring);
typedef size_t (*drain_function)(lean_p2p_ring *ring, uint8_t *buffer, size_t capacity,
                                 size_t max_events, size_t *used, size_t *needed);

static PyObject *take(PyObject *module, PyObject *args) {
    (void)module;
    unsigned long long begin_address;
    unsigned long long drain_address;
    unsigned long long ring_address;
    Py_buffer view;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "KKKw*n:take", &begin_address, &drain_address, &ring_address,
                          &view, &limit)) {
        return NULL;
    }
    if (drain_address == 0 || ring_address == 0 || limit < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "take: a null function or ring, or a negative limit");
        return NULL;
    }
    lean_p2p_ring *ring = (lean_p2p_ring *)(uintptr_t)ring_address;
    if (begin_address != 0) {
        ((begin_drain_function)(uintptr_t)begin_address)(ring);
    }
    size_t used = 0;
    size_t needed = 0;
    size_t count = ((drain_function)(uintptr_t)drain_address)(
        ring, (uint8_t *)view.buf, (size_t)view.len, (size_t)limit, &used, &needed);
    PyBuffer_Release(&view);
    return Py_BuildValue("nnn", (Py_ssize_t)count, (Py_ssize_t)used, (Py_ssize_t)needed);
}

PyDoc_STRVAR(drain_to_lanes_doc,
             "drain_to_lanes(begin_drain, drain, table, width, lanes, room, publish, ring,\n"
             "               buffer, limit, begin)\n--\n\n"
             "The ring's whole drain into the mailbox lanes, in one call: limit is cut to\n"
             "room() (the lanes' admission); lean_p2p_ring_begin_drain if begin; then\n"
             "lean_p2p_ring_drain into buffer, the records decoded and routed by table as\n"
             "decode_routed() does, and the routed lists handed to publish(). Returns\n"
             "(count, needed, limit, published, unpublished, unroutable, error): the\n"
             "records taken; the buffer size the next record needs if none fitted (else\n"
             "0); the admitted limit (0: nothing was taken); how many events publish()\n"
             "appended; the routed lists if publish() appended nothing because the\n"
             "mailbox is closed (else None); the unroutable events (None if there were\n"
             "none); and the exception that ended the call after records left the ring\n"
             "(else None; their fate is then unknown, and the caller counts them as\n"
             "failed). Taken records are never lost unseen: each is published, returned\n"
             "or reported.");

/* The raised exception, normalized, with its traceback (a new reference), the error
 * indicator cleared. */
static PyObject *take_raised_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type;
    PyObject *value;
    PyObject *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

/* Python int -> Py_ssize_t for a callable's answer; -1 with an exception set. */
static Py_ssize_t call_for_size(PyObject *function, PyObject *argument, Py_ssize_t *value) {
    PyObject *answer =
        argument == NULL ? PyObject_CallNoArgs(function) : PyObject_CallOneArg(function, argument);
    if (answer == NULL) {
        return -1;
    }
    *value = PyLong_AsSsize_t(answer);
    Py_DECREF(answer);
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *drain_to_lanes(PyObject *module, PyObject *args) {
    (void)module;
    unsigned long long begin_address;
    unsigned long long drain_address;
    PyObject *table;
    Py_ssize_t width;
    Py_ssize_t lanes;
    PyObject *room;
    PyObject *publish;
    unsigned long long ring_address;
    Py_buffer view;
    Py_ssize_t limit;
    int begin_flag;
    if (!PyArg_ParseTuple(args, "KKO!nnOOKw*np:drain_to_lanes", &begin_address,
                          &drain_address, &PyBytes_Type, &table, &width, &lanes, &room,
                          &publish, &ring_address, &view, &limit, &begin_flag)) {
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *by_lane = NULL;
    PyObject *unroutable = NULL;
    reader state = {.data = view.buf, .length = 0, .offset = 0, .last_peer_id = NULL};
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "lean_p2p.native._records is not configured");
        goto done;
    }
    if (drain_address == 0 || ring_address == 0 || limit < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "drain_to_lanes: a null function or ring, or a negative limit");
        goto done;
    }
    /* Checked before anything leaves the ring. */
    if (check_table(table, width, lanes) < 0) {
        goto done;
    }
    lean_p2p_ring *ring = (lean_p2p_ring *)(uintptr_t)ring_address;
    Py_ssize_t admitted;
    if (call_for_size(room, NULL, &admitted) < 0) {
        goto done;
    }
    if (admitted < limit) {
        limit = admitted < 0 ? 0 : admitted;
    }
    if (begin_flag && begin_address != 0) {
        ((begin_drain_function)(uintptr_t)begin_address)(ring);
    }
    size_t used = 0;
    size_t needed = 0;
    size_t count = 0;
    if (limit > 0) {
        count = ((drain_function)(uintptr_t)drain_address)(ring, (uint8_t *)view.buf,
                                                           (size_t)view.len, (size_t)limit,
                                                           &used, &needed);
    }
    Py_ssize_t published = 0;
    PyObject *unpublished = Py_None;
    PyObject *rejected = Py_None;
    PyObject *error = NULL;
    if (count > 0) {
        /* From here on the records are out of the ring: a failure is returned, not
         * raised, so that the caller learns how many records it concerns. */
        state.length = (Py_ssize_t)used;
        if (route_records(&state, (Py_ssize_t)count, (const uint8_t *)PyBytes_AS_STRING(table),
                          width, lanes, &by_lane, &unroutable) < 0 ||
            call_for_size(publish, by_lane, &published) < 0) {
            error = take_raised_exception();
            published = 0;
        } else {
            if (published < 0) {
                published = 0;
                unpublished = by_lane;
            }
            if (PyList_GET_SIZE(unroutable) != 0) {
                rejected = unroutable;
            }
        }
    }
    result = Py_BuildValue("nnnnOOO", (Py_ssize_t)count, (Py_ssize_t)needed, limit, published,
                           unpublished, rejected, error != NULL ? error : Py_None);
    Py_XDECREF(error);
done:
    Py_XDECREF(by_lane);
    Py_XDECREF(unroutable);
    Py_XDECREF(state.last_peer_id);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"take", take, METH_VARARGS, take_doc},
    {"decode", decode, METH_VARARGS, decode_doc},
    {"decode_routed", decode_routed, METH_VARARGS, decode_routed_doc},
    {"drain_to_lanes", drain_to_lanes, METH_VARARGS, drain_to_lanes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lean_p2p.native._records",
    .m_doc = "Batch decoder of the native ring's drained records (loop thread).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__records(void) {
    return PyModule_Create(&module_definition);
}
