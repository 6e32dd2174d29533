/*
 * lean_p2p_publish.c - the mailbox's publish step as one C call (Python extension module
 * lean_p2p.runtime._publish).
 *
 * Any thread, with the GIL held throughout. A Publisher is bound to one lane: its
 * deque, its capacity, and the mailbox's closed flag (a list, empty until closing
 * begins). put(item) tests the flag, tests the capacity and appends, in one call that
 * neither runs Python code nor lets the GIL go: deque's length and append are C, and
 * allocate no object the cyclic collector tracks, so no collection (and no finalizer)
 * can run in between. Under the GIL that makes the three steps atomic with respect to
 * every other Python thread, aclose() included: a put either sees the mailbox open and
 * has its item in the lane before the flag is set, or sees it closed and publishes
 * nothing. That is what the in-flight counters of the Python put establish, at twice the
 * cost (lean_p2p/runtime/mailbox.py, "Close contract", has the argument).
 *
 * send(item) is a whole put of a sender that does not yield: put(); if the lane is full,
 * the lane's make_room() (Python: the overflow policy) and then force(); and, if the
 * drain is idle (the idle token, a list, is not empty), the mailbox's arm() (Python: the
 * test-and-set that schedules the drain). The publish comes first and arm() after it,
 * which is the order the no-lost-wakeup argument needs; make_room() runs only when put()
 * appended nothing, exactly as in the Python sender. Done in C, a put is one call from
 * the producer's Python instead of a Python function calling two.
 *
 * LanesPublisher is the publish step of a batch routed to several lanes, for the
 * native ring's drain, on the loop thread only: room() is the admission (the least room
 * in a bounded lane), publish(groups) appends each lane's list to its lane and then arms
 * the drain once: the test-and-set on the idle token in C, and if it won, the mailbox's
 * wakeup counter and schedule() (the loop's call_soon of the drain, which is enough on
 * the loop's own thread). The native drain calls the two in one C call (lean_p2p_records.c,
 * drain_to_lanes) with no Python code between them, so the room it admitted is still
 * there when it publishes: publish() does not test the capacity again.
 *
 * serve(pop, limit, handler, name) is the mailbox's serving of a few items of one lane,
 * on the loop thread: up to limit times, pop() an item and call handler(name, item). It
 * stops early when pop() finds the lane empty (IndexError) or when the handler raises,
 * and returns (served, item, error): how many items it handed to the handler (the one
 * that raised included), and that item and its exception, or (served, None, None). The
 * caller reports a handler's Exception and calls again for the rest, and re-raises any
 * other BaseException (KeyboardInterrupt) after counting what was served; items not yet
 * popped stay in the lane, so a stop loses none. The loop is the one in
 * Mailbox._serve_lane_items, without its Python bytecode around each handler call.
 *
 * Free-threaded CPython has no GIL to make the call atomic: the mailbox does not use
 * this module there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *append;    /* the lane deque's bound append */
    PyObject *items;     /* the lane's deque */
    PyObject *closed;    /* the mailbox's closed flag: a list, empty while open */
    PyObject *error;     /* the exception class a put on a closed mailbox raises */
    PyObject *lane;      /* the lane's name, for that error's message */
    Py_ssize_t capacity; /* put() refuses at this depth; force() does not */
    /* send()'s Python steps; NULL when the publisher was made without them */
    PyObject *make_room;  /* the lane's overflow policy: True if it may append */
    PyObject *idle_token; /* the mailbox's idle token: a list, non-empty while idle */
    PyObject *arm;        /* the mailbox's test-and-set that schedules the drain */
} Publisher;

static int refuse_if_closed(Publisher *self) {
    /* Only the collector's tp_clear, breaking a garbage cycle, empties the fields; a
     * finalizer of that cycle could still call in. */
    if (self->append == NULL || self->items == NULL || self->closed == NULL ||
        self->error == NULL || self->lane == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "publisher used after the collector cleared it");
        return -1;
    }
    if (PyList_GET_SIZE(self->closed) != 0) {
        PyErr_Format(self->error, "mailbox is closed; %R item not accepted", self->lane);
        return -1;
    }
    return 0;
}

static PyObject *append_item(Publisher *self, PyObject *item) {
    PyObject *result = PyObject_CallOneArg(self->append, item);
    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(put_doc,
             "put(item) -> bool\n--\n\n"
             "Append item to the lane unless it is full (False: nothing appended). Raises\n"
             "the closed error, appending nothing, once the closed flag is set.");

static PyObject *publisher_put(PyObject *object, PyObject *item) {
    Publisher *self = (Publisher *)object;
    if (refuse_if_closed(self) < 0) {
        return NULL;
    }
    Py_ssize_t depth = PyObject_Length(self->items);
    if (depth < 0) {
        return NULL;
    }
    if (depth >= self->capacity) {
        Py_RETURN_FALSE;
    }
    return append_item(self, item);
}

PyDoc_STRVAR(force_doc,
             "force(item) -> True\n--\n\n"
             "Append item whatever the lane's depth (its overflow policy has made room or\n"
             "allows it). Raises the closed error, appending nothing, once the closed flag\n"
             "is set.");

static PyObject *publisher_force(PyObject *object, PyObject *item) {
    Publisher *self = (Publisher *)object;
    if (refuse_if_closed(self) < 0) {
        return NULL;
    }
    return append_item(self, item);
}

PyDoc_STRVAR(send_doc,
             "send(item) -> bool\n--\n\n"
             "A sender's whole put: put(item); if the lane is full, make_room() and then\n"
             "force(item) (False if make_room() says no: nothing appended); then arm() if\n"
             "the idle token is not empty. Raises the closed error, appending nothing,\n"
             "once the closed flag is set, and whatever make_room() or arm() raises.");

static PyObject *publisher_send(PyObject *object, PyObject *item) {
    Publisher *self = (Publisher *)object;
    if (self->arm == NULL || self->idle_token == NULL || self->make_room == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "send() needs a publisher made with make_room, idle_token and arm");
        return NULL;
    }
    PyObject *published = publisher_put(object, item); /* 1. publish ... */
    if (published == NULL) {
        return NULL;
    }
    if (published == Py_False) {
        Py_DECREF(published); /* put()'s False, a new reference like any result */
        /* Full: the policy decides (it may evict, or allow, or refuse and count). */
        PyObject *room = PyObject_CallNoArgs(self->make_room);
        if (room == NULL) {
            return NULL;
        }
        int may_append = PyObject_IsTrue(room);
        Py_DECREF(room);
        if (may_append < 0) {
            return NULL;
        }
        if (may_append == 0) {
            Py_RETURN_FALSE; /* refused: nothing appended */
        }
        published = publisher_force(object, item);
        if (published == NULL) {
            return NULL;
        }
    }
    /* 2. ... then the cheap pre-check, and the test-and-set in arm(). */
    if (PyList_GET_SIZE(self->idle_token) != 0) {
        PyObject *armed = PyObject_CallNoArgs(self->arm);
        if (armed == NULL) {
            Py_DECREF(published);
            return NULL;
        }
        Py_DECREF(armed);
    }
    return published;
}

static PyObject *publisher_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"items", "capacity", "closed",     "error", "lane",
                               "make_room", "idle_token", "arm", NULL};
    PyObject *items;
    Py_ssize_t capacity;
    PyObject *closed;
    PyObject *error;
    PyObject *lane;
    PyObject *make_room = NULL;
    PyObject *idle_token = NULL;
    PyObject *arm = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnO!OU|$OO!O:Publisher", keywords, &items,
                                     &capacity, &PyList_Type, &closed, &error, &lane,
                                     &make_room, &PyList_Type, &idle_token, &arm)) {
        return NULL;
    }
    if ((make_room == NULL) != (arm == NULL) || (make_room == NULL) != (idle_token == NULL)) {
        PyErr_SetString(PyExc_TypeError, "make_room, idle_token and arm go together");
        return NULL;
    }
    if (make_room != NULL && (!PyCallable_Check(make_room) || !PyCallable_Check(arm))) {
        PyErr_SetString(PyExc_TypeError, "make_room and arm must be callable");
        return NULL;
    }
    /* Only the exact deque is known to run no Python code in len() and append(). */
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections == NULL) {
        return NULL;
    }
    PyObject *deque_type = PyObject_GetAttrString(collections, "deque");
    Py_DECREF(collections);
    if (deque_type == NULL) {
        return NULL;
    }
    int exact_deque = (PyObject *)Py_TYPE(items) == deque_type;
    Py_DECREF(deque_type);
    if (!exact_deque) {
        PyErr_SetString(PyExc_TypeError, "items must be a collections.deque");
        return NULL;
    }
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "error must be an exception class");
        return NULL;
    }
    if (capacity < 0) {
        PyErr_SetString(PyExc_ValueError, "capacity must be >= 0");
        return NULL;
    }
    PyObject *append = PyObject_GetAttrString(items, "append");
    if (append == NULL) {
        return NULL;
    }
    Publisher *self = (Publisher *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(append);
        return NULL;
    }
    self->append = append;
    self->items = Py_NewRef(items);
    self->closed = Py_NewRef(closed);
    self->error = Py_NewRef(error);
    self->lane = Py_NewRef(lane);
    self->capacity = capacity;
    self->make_room = Py_XNewRef(make_room);
    self->idle_token = Py_XNewRef(idle_token);
    self->arm = Py_XNewRef(arm);
    return (PyObject *)self;
}

/* arm is a bound method of the mailbox, which holds its senders, which hold their
 * publisher: a cycle, which the collector must be able to see and break. */
static int publisher_traverse(PyObject *object, visitproc visit, void *arg) {
    Publisher *self = (Publisher *)object;
    Py_VISIT(self->append);
    Py_VISIT(self->items);
    Py_VISIT(self->closed);
    Py_VISIT(self->error);
    Py_VISIT(self->lane);
    Py_VISIT(self->make_room);
    Py_VISIT(self->idle_token);
    Py_VISIT(self->arm);
    return 0;
}

static int publisher_clear(PyObject *object) {
    Publisher *self = (Publisher *)object;
    Py_CLEAR(self->make_room);
    Py_CLEAR(self->idle_token);
    Py_CLEAR(self->arm);
    Py_CLEAR(self->append);
    Py_CLEAR(self->items);
    Py_CLEAR(self->closed);
    Py_CLEAR(self->error);
    Py_CLEAR(self->lane);
    return 0;
}

static void publisher_dealloc(PyObject *object) {
    PyObject_GC_UnTrack(object);
    publisher_clear(object);
    Py_TYPE(object)->tp_free(object);
}

static PyMethodDef publisher_methods[] = {
    {"put", publisher_put, METH_O, put_doc},
    {"force", publisher_force, METH_O, force_doc},
    {"send", publisher_send, METH_O, send_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(publisher_doc,
             "Publisher(items, capacity, closed, error, lane, *, make_room=None, "
             "idle_token=None, arm=None)\n--\n\n"
             "The publish step of one mailbox lane: the closed test, the capacity test and\n"
             "the append, atomic under the GIL. Made with make_room, idle_token and arm,\n"
             "its send() is a whole put of a sender that does not yield.");

static PyTypeObject PublisherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lean_p2p.runtime._publish.Publisher",
    .tp_basicsize = sizeof(Publisher),
    .tp_dealloc = publisher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = publisher_doc,
    .tp_traverse = publisher_traverse,
    .tp_clear = publisher_clear,
    .tp_methods = publisher_methods,
    .tp_new = publisher_new,
};

/* -- LanesPublisher ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *appends;      /* tuple: each lane deque's bound append */
    PyObject *queues;       /* tuple: each lane's deque */
    Py_ssize_t *capacities; /* each lane's capacity; -1: unbounded (never_drop) */
    Py_ssize_t lanes;
    PyObject *closed;     /* the mailbox's closed flag: a list, empty while open */
    PyObject *idle_token; /* the mailbox's idle token: a list, non-empty while idle */
    PyObject *count_wakeup; /* the mailbox's wakeup counter's increment */
    PyObject *schedule;     /* call_soon(drain) on the mailbox's loop */
} LanesPublisher;

static int lanes_refuse_if_cleared(LanesPublisher *self) {
    if (self->appends == NULL || self->queues == NULL || self->closed == NULL ||
        self->idle_token == NULL || self->count_wakeup == NULL || self->schedule == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "publisher used after the collector cleared it");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(room_doc,
             "room() -> int\n--\n\n"
             "The least free room in a bounded lane (0 if one is full); sys.maxsize when\n"
             "no lane is bounded or the mailbox is closed (every event then fails at once\n"
             "and is counted, rather than waiting).");

static PyObject *lanes_room(PyObject *object, PyObject *unused) {
    (void)unused;
    LanesPublisher *self = (LanesPublisher *)object;
    if (lanes_refuse_if_cleared(self) < 0) {
        return NULL;
    }
    Py_ssize_t least = PY_SSIZE_T_MAX;
    if (PyList_GET_SIZE(self->closed) == 0) {
        for (Py_ssize_t lane = 0; lane < self->lanes; lane++) {
            Py_ssize_t capacity = self->capacities[lane];
            if (capacity < 0) {
                continue;
            }
            Py_ssize_t depth = PyObject_Length(PyTuple_GET_ITEM(self->queues, lane));
            if (depth < 0) {
                return NULL;
            }
            Py_ssize_t room = depth < capacity ? capacity - depth : 0;
            if (room < least) {
                least = room;
            }
        }
    }
    return PyLong_FromSsize_t(least);
}

PyDoc_STRVAR(publish_doc,
             "publish(groups) -> int\n--\n\n"
             "Append each list of groups (one per lane, in the lanes' order) to its lane,\n"
             "in order, then arm the drain if it is idle and anything was appended.\n"
             "Returns how many items were appended, or -1 with nothing appended if the\n"
             "mailbox is closed. The capacity is not tested: room() admitted them.");

static PyObject *lanes_publish(PyObject *object, PyObject *groups) {
    LanesPublisher *self = (LanesPublisher *)object;
    if (lanes_refuse_if_cleared(self) < 0) {
        return NULL;
    }
    if (!PyList_Check(groups) || PyList_GET_SIZE(groups) != self->lanes) {
        PyErr_Format(PyExc_TypeError, "publish() takes a list of %zd lists", self->lanes);
        return NULL;
    }
    for (Py_ssize_t lane = 0; lane < self->lanes; lane++) {
        if (!PyList_Check(PyList_GET_ITEM(groups, lane))) {
            PyErr_Format(PyExc_TypeError, "publish() takes a list of %zd lists", self->lanes);
            return NULL;
        }
    }
    /* The closed test and the appends run no Python code and allocate nothing the
     * collector tracks (deque's append is C, its blocks are plain memory), so under the
     * GIL they are atomic with respect to aclose(), as in Publisher.put(). */
    if (PyList_GET_SIZE(self->closed) != 0) {
        return PyLong_FromLong(-1);
    }
    Py_ssize_t published = 0;
    for (Py_ssize_t lane = 0; lane < self->lanes; lane++) {
        PyObject *group = PyList_GET_ITEM(groups, lane);
        PyObject *append = PyTuple_GET_ITEM(self->appends, lane);
        /* The size is read each time: nothing here runs code that could change the
         * list, but the loop must not read past it if something did. */
        for (Py_ssize_t index = 0; index < PyList_GET_SIZE(group); index++) {
            PyObject *result = PyObject_CallOneArg(append, PyList_GET_ITEM(group, index));
            if (result == NULL) {
                return NULL;
            }
            Py_DECREF(result);
            published++;
        }
    }
    /* Publish first, then the test-and-set: the no-lost-wakeup order. Taking the token
     * is list.pop() on the one-slot list, done here as a resize that runs no Python
     * code: under the GIL no other thread's pop or append can come between the test
     * and the take, exactly as within list.pop itself. */
    Py_ssize_t tokens = PyList_GET_SIZE(self->idle_token);
    if (published != 0 && tokens != 0) {
        if (PyList_SetSlice(self->idle_token, tokens - 1, tokens, NULL) < 0) {
            return NULL;
        }
        PyObject *counted = PyObject_CallNoArgs(self->count_wakeup);
        if (counted == NULL) {
            return NULL;
        }
        Py_DECREF(counted);
        PyObject *handle = PyObject_CallNoArgs(self->schedule);
        if (handle == NULL) {
            return NULL;
        }
        Py_DECREF(handle);
    }
    return PyLong_FromSsize_t(published);
}

static PyObject *lanes_publisher_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"lanes",        "closed",   "idle_token",
                               "count_wakeup", "schedule", NULL};
    PyObject *lane_specs;
    PyObject *closed;
    PyObject *idle_token;
    PyObject *count_wakeup;
    PyObject *schedule;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!OO:LanesPublisher", keywords,
                                     &PyTuple_Type, &lane_specs, &PyList_Type, &closed,
                                     &PyList_Type, &idle_token, &count_wakeup, &schedule)) {
        return NULL;
    }
    if (!PyCallable_Check(count_wakeup) || !PyCallable_Check(schedule)) {
        PyErr_SetString(PyExc_TypeError, "count_wakeup and schedule must be callable");
        return NULL;
    }
    Py_ssize_t lanes = PyTuple_GET_SIZE(lane_specs);
    if (lanes < 1) {
        PyErr_SetString(PyExc_ValueError, "a lanes publisher needs at least one lane");
        return NULL;
    }
    PyObject *deque_type = NULL;
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections != NULL) {
        deque_type = PyObject_GetAttrString(collections, "deque");
        Py_DECREF(collections);
    }
    if (deque_type == NULL) {
        return NULL;
    }
    LanesPublisher *self = (LanesPublisher *)type->tp_alloc(type, 0);
    Py_ssize_t *capacities = PyMem_New(Py_ssize_t, lanes);
    PyObject *appends = PyTuple_New(lanes);
    PyObject *queues = PyTuple_New(lanes);
    if (self == NULL || capacities == NULL || appends == NULL || queues == NULL) {
        goto fail;
    }
    for (Py_ssize_t lane = 0; lane < lanes; lane++) {
        PyObject *spec = PyTuple_GET_ITEM(lane_specs, lane);
        PyObject *items;
        PyObject *capacity;
        if (!PyArg_ParseTuple(spec, "OO:lane", &items, &capacity)) {
            goto fail;
        }
        /* Only the exact deque is known to run no Python code in len() and append(). */
        if ((PyObject *)Py_TYPE(items) != deque_type) {
            PyErr_SetString(PyExc_TypeError, "each lane's items must be a collections.deque");
            goto fail;
        }
        if (capacity == Py_None) {
            capacities[lane] = -1;
        } else {
            capacities[lane] = PyLong_AsSsize_t(capacity);
            if (capacities[lane] == -1 && PyErr_Occurred()) {
                goto fail;
            }
            if (capacities[lane] < 0) {
                PyErr_SetString(PyExc_ValueError, "capacity must be >= 0, or None");
                goto fail;
            }
        }
        PyObject *append = PyObject_GetAttrString(items, "append");
        if (append == NULL) {
            goto fail;
        }
        PyTuple_SET_ITEM(appends, lane, append);
        PyTuple_SET_ITEM(queues, lane, Py_NewRef(items));
    }
    Py_DECREF(deque_type);
    self->appends = appends;
    self->queues = queues;
    self->capacities = capacities;
    self->lanes = lanes;
    self->closed = Py_NewRef(closed);
    self->idle_token = Py_NewRef(idle_token);
    self->count_wakeup = Py_NewRef(count_wakeup);
    self->schedule = Py_NewRef(schedule);
    return (PyObject *)self;
fail:
    Py_DECREF(deque_type);
    Py_XDECREF(appends);
    Py_XDECREF(queues);
    PyMem_Free(capacities);
    Py_XDECREF(self);
    return NULL;
}

/* schedule refers to the mailbox's drain, and so to the mailbox, which a sink holding
 * this publisher may be reachable from: a cycle the collector must see and break. */
static int lanes_publisher_traverse(PyObject *object, visitproc visit, void *arg) {
    LanesPublisher *self = (LanesPublisher *)object;
    Py_VISIT(self->appends);
    Py_VISIT(self->queues);
    Py_VISIT(self->closed);
    Py_VISIT(self->idle_token);
    Py_VISIT(self->count_wakeup);
    Py_VISIT(self->schedule);
    return 0;
}

static int lanes_publisher_clear(PyObject *object) {
    LanesPublisher *self = (LanesPublisher *)object;
    Py_CLEAR(self->schedule);
    Py_CLEAR(self->count_wakeup);
    Py_CLEAR(self->idle_token);
    Py_CLEAR(self->closed);
    Py_CLEAR(self->appends);
    Py_CLEAR(self->queues);
    return 0;
}

static void lanes_publisher_dealloc(PyObject *object) {
    PyObject_GC_UnTrack(object);
    lanes_publisher_clear(object);
    PyMem_Free(((LanesPublisher *)object)->capacities);
    Py_TYPE(object)->tp_free(object);
}

static PyMethodDef lanes_publisher_methods[] = {
    {"room", lanes_room, METH_NOARGS, room_doc},
    {"publish", lanes_publish, METH_O, publish_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(lanes_publisher_doc,
             "LanesPublisher(lanes, closed, idle_token, count_wakeup, schedule)\n--\n\n"
             "The publish step of a batch routed to several lanes (the native ring's\n"
             "drain; loop thread only). lanes: a tuple of (deque, capacity or None) pairs.");

static PyTypeObject LanesPublisherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lean_p2p.runtime._publish.LanesPublisher",
    .tp_basicsize = sizeof(LanesPublisher),
    .tp_dealloc = lanes_publisher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = lanes_publisher_doc,
    .tp_traverse = lanes_publisher_traverse,
    .tp_clear = lanes_publisher_clear,
    .tp_methods = lanes_publisher_methods,
    .tp_new = lanes_publisher_new,
};

/* -- serve ------------------------------------------------------------------------- */

PyDoc_STRVAR(serve_doc,
             "serve(pop, limit, handler, name) -> (served, item, error)\n\n"
             "Loop thread: up to limit times, pop() an item and call handler(name, item).\n"
             "Stops when pop() raises IndexError (the lane is empty) or the handler raises;\n"
             "served counts the items handed to the handler, the one that raised included,\n"
             "and item and error are that item and its exception (else None, None).");

/* The exception being raised, normalized, with its traceback, and cleared. */
static PyObject *take_raised(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

static PyObject *serve(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "serve() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *pop = args[0];
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *handler = args[2];
    if (!PyCallable_Check(pop) || !PyCallable_Check(handler)) {
        PyErr_SetString(PyExc_TypeError, "pop and handler must be callable");
        return NULL;
    }
    /* handler(name, item): slot 0 is scratch space that vectorcall may use for a bound
     * method's self (PY_VECTORCALL_ARGUMENTS_OFFSET) */
    PyObject *call_args[3] = {NULL, args[3], NULL};
    Py_ssize_t served = 0;
    while (served < limit) {
        PyObject *item = PyObject_CallNoArgs(pop);
        if (item == NULL) {
            if (PyErr_ExceptionMatches(PyExc_IndexError)) {
                PyErr_Clear(); /* emptied: an evicting producer may shed the last item */
                break;
            }
            return NULL; /* a deque's pop raises nothing else */
        }
        served++;
        call_args[2] = item;
        PyObject *result = PyObject_Vectorcall(
            handler, call_args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (result == NULL) {
            PyObject *value = take_raised();
            if (value == NULL) { /* a failure without an exception object: keep it raised */
                Py_DECREF(item);
                PyErr_SetString(PyExc_SystemError, "handler failed without an exception");
                return NULL;
            }
            PyObject *outcome = Py_BuildValue("(nNN)", served, item, value);
            return outcome; /* Py_BuildValue's N took both references, even on failure */
        }
        Py_DECREF(result);
        Py_DECREF(item);
    }
    return Py_BuildValue("(nOO)", served, Py_None, Py_None);
}

static PyMethodDef publish_functions[] = {
    {"serve", (PyCFunction)(void (*)(void))serve, METH_FASTCALL, serve_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef publish_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lean_p2p.runtime._publish",
    .m_doc = "The mailbox's publish step as one C call, atomic under the GIL, and the "
             "serving of a few items of a lane.",
    .m_size = -1,
    .m_methods = publish_functions,
};

PyMODINIT_FUNC PyInit__publish(void) {
    if (PyType_Ready(&PublisherType) < 0 || PyType_Ready(&LanesPublisherType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&publish_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Publisher", (PyObject *)&PublisherType) < 0 ||
        PyModule_AddObjectRef(module, "LanesPublisher", (PyObject *)&LanesPublisherType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
