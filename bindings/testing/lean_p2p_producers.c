/*
 * lean_p2p_producers.c - a native producer driver for tests, benchmarks and the stress
 * command: N pthreads each push M events through a push function, exactly as an
 * embedder's networking threads would.
 *
 * The push function is either lean_p2p_ring_push (the ring) or any function with the
 * same signature, such as a ctypes callback (the callback path), so both paths are
 * driven by the same code. Threads never touch Python themselves.
 *
 * Each event's payload starts with a 24-byte little-endian stamp: producer index
 * (u32), zero (u32), sequence number within that producer (u64), and the
 * CLOCK_MONOTONIC time of the push in nanoseconds (u64). The request id repeats
 * (producer << 40) | sequence. The consumer checks exactly-once and per-producer order
 * from the stamp and measures latency from the time.
 */
#define _GNU_SOURCE
#include "lean_p2p.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))
#define STAMP_BYTES 24

typedef struct producer_totals {
    uint64_t attempted; /* events this producer tried to hand over (retries excluded) */
    uint64_t accepted;
    uint64_t full;      /* pushes answered LEAN_P2P_FULL (each retry counts) */
    uint64_t closed;
    uint64_t other_errors;
    uint64_t push_ns;   /* time spent inside accepted push calls */
    uint64_t wall_ns;   /* from the thread's first push to its last */
} producer_totals;

typedef struct producer producer;

typedef struct producer_run {
    lean_p2p_push_fn push;
    void (*on_thread_exit)(void); /* e.g. a callback bridge's detach; may be NULL */
    lean_p2p_ring *ring;
    int until_stopped; /* push until stopped or closed instead of a fixed count */
    uint32_t payload_len;
    int retry_when_full;
    int record_costs;
    uint64_t interval_ns; /* 0: flat out; else each producer pushes once per interval */
    uint32_t burst;       /* paced: sleep once per this many events (1: before each) */
    int stagger;          /* paced: spread the producers' slots evenly over one period */
    uint64_t started_ns;  /* paced: the common start, set before the threads may go */
    int thread_count;
    atomic_int stop;
    atomic_int join_state; /* 0: not joined, 1: a thread is joining, 2: all joined */
    atomic_int ready;
    atomic_int go;
    atomic_int finished; /* threads past their last push */
    producer *producers;
} producer_run;

struct producer {
    producer_run *run;
    uint64_t events;
    pthread_t thread;
    int joinable;
    uint32_t index;
    producer_totals totals;
    uint64_t *costs; /* ns per accepted push, when record_costs */
    uint8_t *payload;
    char peer_id[32];
};

static uint64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void put_u32(uint8_t *out, uint32_t value) {
    for (int byte = 0; byte < 4; byte++) {
        out[byte] = (uint8_t)(value >> (8 * byte));
    }
}

static void put_u64(uint8_t *out, uint64_t value) {
    for (int byte = 0; byte < 8; byte++) {
        out[byte] = (uint8_t)(value >> (8 * byte));
    }
}

static void *produce(void *argument) {
    producer *self = argument;
    producer_run *run = self->run;
    lean_p2p_event event = {
        .kind = LEAN_P2P_EVENT_GOSSIP,
        .channel = LEAN_P2P_TOPIC_ATTESTATION,
        .peer_id = (const uint8_t *)self->peer_id,
        .peer_id_len = strlen(self->peer_id),
        .payload = self->payload,
        .payload_len = run->payload_len,
    };
    put_u32(self->payload, self->index);
    put_u32(self->payload + 4, 0);
    /* Start together, so that "8 producers" really contend. */
    atomic_fetch_add(&run->ready, 1);
    while (!atomic_load(&run->go)) {
        sched_yield();
    }
    uint64_t started = now_ns();
    /* Paced slots count from one common start, so that the producers' phases are
     * what `stagger` says: together (every producer wakes at the same instants) or
     * spread evenly over one period, as independent network threads would be. */
    uint64_t first_slot = run->started_ns;
    if (run->stagger && run->thread_count > 0) {
        first_slot += (uint64_t)self->index * run->interval_ns * run->burst /
                      (uint64_t)run->thread_count;
    }
    for (uint64_t sequence = 0;
         run->until_stopped || sequence < self->events; sequence++) {
        if (atomic_load_explicit(&run->stop, memory_order_relaxed)) {
            break;
        }
        event.request_id = ((uint64_t)self->index << 40) | sequence;
        put_u64(self->payload + 8, sequence);
        if (run->interval_ns != 0 && sequence % run->burst == 0) {
            /* Paced: wait for this event's slot (absolute, so lateness does not drift);
             * in bursts, for the slot of the burst's first event, the rest following at
             * once (one thread wakeup per burst, as from one socket read). */
            uint64_t slot = first_slot + sequence * run->interval_ns;
            struct timespec until = {.tv_sec = (time_t)(slot / 1000000000u),
                                     .tv_nsec = (long)(slot % 1000000000u)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
            }
        }
        self->totals.attempted++;
        int result;
        for (;;) {
            uint64_t before = now_ns();
            put_u64(self->payload + 16, before);
            result = run->push(run->ring, &event);
            if (result == LEAN_P2P_OK) {
                uint64_t cost = now_ns() - before;
                self->totals.push_ns += cost;
                if (self->costs != NULL) {
                    self->costs[self->totals.accepted] = cost;
                }
                self->totals.accepted++;
                break;
            }
            if (result == LEAN_P2P_FULL) {
                self->totals.full++;
                if (run->retry_when_full &&
                    !atomic_load_explicit(&run->stop, memory_order_relaxed)) {
                    sched_yield();
                    continue;
                }
            } else if (result == LEAN_P2P_ERR_CLOSED) {
                self->totals.closed++;
            } else {
                self->totals.other_errors++;
            }
            break;
        }
        if (result == LEAN_P2P_ERR_CLOSED) {
            break; /* the header's rule: stop pushing once the ring is closed */
        }
    }
    self->totals.wall_ns = now_ns() - started;
    if (run->on_thread_exit != NULL) {
        run->on_thread_exit();
    }
    atomic_fetch_add(&run->finished, 1);
    return NULL;
}

EXPORT void producers_free(producer_run *run);

/* Start `threads` producers, producer i pushing counts[i] events (counts NULL: push
 * until stopped or closed), flat out or (interval_ns > 0) one push per interval each,
 * paced in bursts of `burst` events (0 or 1: each event paced alone), all at the same
 * instants or, with `stagger`, producer i a fraction i/threads of a period later.
 * payload_len is raised to the 24-byte stamp if smaller.
 * on_thread_exit (may be NULL) runs on each producer thread after its last push.
 * Returns NULL if memory or threads could not be had. */
EXPORT producer_run *producers_start_counts(lean_p2p_push_fn push, lean_p2p_ring *ring,
                                            int threads, const uint64_t *counts,
                                            uint32_t payload_len, int retry_when_full,
                                            int record_costs, uint64_t interval_ns,
                                            uint32_t burst, int stagger,
                                            void (*on_thread_exit)(void)) {
    if (push == NULL || threads <= 0) {
        return NULL;
    }
    producer_run *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        return NULL;
    }
    run->push = push;
    run->on_thread_exit = on_thread_exit;
    run->ring = ring;
    run->until_stopped = counts == NULL;
    run->payload_len = payload_len < STAMP_BYTES ? STAMP_BYTES : payload_len;
    run->retry_when_full = retry_when_full;
    run->interval_ns = interval_ns;
    run->burst = burst == 0 ? 1 : burst;
    run->stagger = stagger;
    run->record_costs = record_costs && counts != NULL;
    run->producers = calloc((size_t)threads, sizeof(producer));
    if (run->producers == NULL) {
        free(run);
        return NULL;
    }
    for (int index = 0; index < threads; index++) {
        producer *self = &run->producers[index];
        self->run = run;
        self->index = (uint32_t)index;
        self->events = counts != NULL ? counts[index] : 0;
        snprintf(self->peer_id, sizeof(self->peer_id), "native-producer-%d", index);
        self->payload = calloc(1, run->payload_len);
        if (run->record_costs) {
            self->costs = calloc(self->events > 0 ? self->events : 1, sizeof(uint64_t));
        }
        if (self->payload == NULL || (run->record_costs && self->costs == NULL) ||
            pthread_create(&self->thread, NULL, produce, self) != 0) {
            atomic_store(&run->stop, 1);
            atomic_store(&run->go, 1);
            run->thread_count = index + 1; /* frees its buffers; it was never started */
            producers_free(run);
            return NULL;
        }
        self->joinable = 1;
        run->thread_count = index + 1;
    }
    while (atomic_load(&run->ready) < threads) {
        sched_yield();
    }
    run->started_ns = now_ns(); /* published to the threads by the store below */
    atomic_store(&run->go, 1);
    return run;
}

/* Start `threads` producers pushing events_per_thread events each (0: until stopped or
 * closed); otherwise as producers_start_counts. */
EXPORT producer_run *producers_start(lean_p2p_push_fn push, lean_p2p_ring *ring, int threads,
                                     uint64_t events_per_thread, uint32_t payload_len,
                                     int retry_when_full, int record_costs,
                                     void (*on_thread_exit)(void)) {
    if (threads <= 0 || threads > 4096) {
        return NULL;
    }
    uint64_t counts[4096];
    for (int index = 0; index < threads; index++) {
        counts[index] = events_per_thread;
    }
    return producers_start_counts(push, ring, threads, events_per_thread ? counts : NULL,
                                  payload_len, retry_when_full, record_costs, 0, 1, 0,
                                  on_thread_exit);
}

/* Non-blocking: 1 once every producer thread is past its last push, else 0. */
EXPORT int producers_done(producer_run *run) {
    return atomic_load(&run->finished) == run->thread_count;
}

/* Ask the producers to stop at their next event (they finish the push in hand). */
EXPORT void producers_stop(producer_run *run) {
    atomic_store(&run->stop, 1);
}

/* Join every producer thread exactly once, whoever calls first (join and free may race
 * when a test gives up early); later callers wait for that first join to finish. */
static void join_threads(producer_run *run) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&run->join_state, &expected, 1)) {
        for (int index = 0; index < run->thread_count; index++) {
            producer *self = &run->producers[index];
            if (self->joinable) {
                pthread_join(self->thread, NULL);
                self->joinable = 0;
            }
        }
        atomic_store(&run->join_state, 2);
        return;
    }
    while (atomic_load(&run->join_state) != 2) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&pause, NULL);
    }
}

/* Wait for every producer; returns the summed totals in *out. */
EXPORT void producers_join(producer_run *run, producer_totals *out) {
    join_threads(run);
    memset(out, 0, sizeof(*out));
    for (int index = 0; index < run->thread_count; index++) {
        const producer *self = &run->producers[index];
        out->attempted += self->totals.attempted;
        out->accepted += self->totals.accepted;
        out->full += self->totals.full;
        out->closed += self->totals.closed;
        out->other_errors += self->totals.other_errors;
        out->push_ns += self->totals.push_ns;
        if (self->totals.wall_ns > out->wall_ns) {
            out->wall_ns = self->totals.wall_ns;
        }
    }
}

/* One producer's totals (after join). */
EXPORT void producers_thread_totals(const producer_run *run, int index, producer_totals *out) {
    *out = run->producers[index].totals;
}

/* Accepted events of one producer (after join): lets the consumer check its count. */
EXPORT uint64_t producers_accepted(const producer_run *run, int index) {
    return run->producers[index].totals.accepted;
}

static int compare_u64(const void *left, const void *right) {
    uint64_t a = *(const uint64_t *)left;
    uint64_t b = *(const uint64_t *)right;
    return (a > b) - (a < b);
}

/* Push-cost percentile in ns over all producers (after join; needs record_costs). */
EXPORT uint64_t producers_cost_percentile(const producer_run *run, double fraction) {
    uint64_t total = 0;
    for (int index = 0; index < run->thread_count; index++) {
        total += run->producers[index].costs != NULL ? run->producers[index].totals.accepted : 0;
    }
    if (total == 0) {
        return 0;
    }
    uint64_t *all = malloc(total * sizeof(uint64_t));
    if (all == NULL) {
        return 0;
    }
    uint64_t filled = 0;
    for (int index = 0; index < run->thread_count; index++) {
        const producer *self = &run->producers[index];
        if (self->costs != NULL) {
            memcpy(all + filled, self->costs, self->totals.accepted * sizeof(uint64_t));
            filled += self->totals.accepted;
        }
    }
    qsort(all, filled, sizeof(uint64_t), compare_u64);
    double position = fraction * (double)(filled - 1) + 0.5;
    uint64_t rank = position <= 0 ? 0 : (uint64_t)position;
    uint64_t value = all[rank < filled ? rank : filled - 1];
    free(all);
    return value;
}

/* Stop, join (if not yet joined) and free everything. No other call may follow. */
EXPORT void producers_free(producer_run *run) {
    if (run == NULL) {
        return;
    }
    atomic_store(&run->stop, 1);
    atomic_store(&run->go, 1);
    join_threads(run);
    for (int index = 0; index < run->thread_count; index++) {
        producer *self = &run->producers[index];
        free(self->payload);
        free(self->costs);
    }
    free(run->producers);
    free(run);
}

/*
 * The floor of the native hand-off: a C consumer thread that blocks in poll(2) on the
 * ring's eventfd and drains the ring itself, with no event loop and no Python. Each
 * event's delay runs from its push stamp to the moment the consumer has read it; its
 * wait, to the moment the consumer began the drain that took it. What is left is the
 * kernel's wakeup and the cores the producers share with the consumer.
 *
 * The ring's consumer functions are passed in (this library does not link against the
 * ring's), and the consumer thread is the ring's single consumer while it runs.
 */
typedef int (*ring_eventfd_fn)(const lean_p2p_ring *ring);
typedef void (*ring_begin_drain_fn)(lean_p2p_ring *ring);
typedef size_t (*ring_drain_fn)(lean_p2p_ring *ring, uint8_t *buffer, size_t capacity,
                                size_t max_events, size_t *used, size_t *needed);

#define CONSUMER_BATCH 1024
#define CONSUMER_BUFFER_BYTES (1u << 20)

typedef struct consumer_run {
    lean_p2p_ring *ring;
    ring_eventfd_fn eventfd_of;
    ring_begin_drain_fn begin_drain;
    ring_drain_fn drain;
    uint64_t expected;
    uint64_t received; /* read by the caller only after consumer_join */
    uint64_t *delays_ns;
    uint64_t *waits_ns;
    uint8_t *buffer;
    atomic_int stop;
    int failed; /* a record the consumer could not read: a broken build */
    pthread_t thread;
} consumer_run;

static void consume_records(consumer_run *run, size_t count, uint64_t drain_began) {
    size_t offset = 0;
    for (size_t index = 0; index < count && run->received < run->expected; index++) {
        lean_p2p_record_header header;
        memcpy(&header, run->buffer + offset, sizeof(header));
        offset += sizeof(header) + header.peer_id_len;
        if (header.payload_len < STAMP_BYTES) {
            run->failed = 1;
            return;
        }
        uint64_t pushed = 0;
        for (int byte = 0; byte < 8; byte++) { /* the stamp's last u64, little-endian */
            pushed |= (uint64_t)run->buffer[offset + 16 + byte] << (8 * byte);
        }
        offset += header.payload_len;
        uint64_t now = now_ns();
        run->delays_ns[run->received] = now - pushed;
        run->waits_ns[run->received] = drain_began > pushed ? drain_began - pushed : 0;
        run->received++;
    }
}

static void *consume(void *argument) {
    consumer_run *run = argument;
    struct pollfd wakeup = {.fd = run->eventfd_of(run->ring), .events = POLLIN};
    while (run->received < run->expected && !atomic_load(&run->stop) && !run->failed) {
        /* A bounded poll, so that a stop is seen even if no event ever comes. */
        if (poll(&wakeup, 1, 100) <= 0) {
            continue;
        }
        uint64_t drain_began = now_ns();
        run->begin_drain(run->ring); /* clear the pending flag before reading slots */
        for (;;) {
            size_t used = 0;
            size_t needed = 0;
            size_t count = run->drain(run->ring, run->buffer, CONSUMER_BUFFER_BYTES,
                                      CONSUMER_BATCH, &used, &needed);
            consume_records(run, count, drain_began);
            if (count < CONSUMER_BATCH || needed != 0 || run->failed) {
                break; /* the rest (an event being written) comes with its own wakeup */
            }
        }
    }
    return NULL;
}

/* Start a consumer thread on `ring` that takes `expected` events (their pushes stamped
 * as the producers here stamp them). Returns NULL if memory or a thread could not be
 * had. The caller must not drain the ring itself until consumer_join returns. */
EXPORT consumer_run *consumer_start(lean_p2p_ring *ring, ring_eventfd_fn eventfd_of,
                                    ring_begin_drain_fn begin_drain, ring_drain_fn drain,
                                    uint64_t expected) {
    consumer_run *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        return NULL;
    }
    run->ring = ring;
    run->eventfd_of = eventfd_of;
    run->begin_drain = begin_drain;
    run->drain = drain;
    run->expected = expected;
    run->delays_ns = calloc(expected > 0 ? expected : 1, sizeof(uint64_t));
    run->waits_ns = calloc(expected > 0 ? expected : 1, sizeof(uint64_t));
    run->buffer = malloc(CONSUMER_BUFFER_BYTES);
    if (run->delays_ns == NULL || run->waits_ns == NULL || run->buffer == NULL ||
        pthread_create(&run->thread, NULL, consume, run) != 0) {
        free(run->delays_ns);
        free(run->waits_ns);
        free(run->buffer);
        free(run);
        return NULL;
    }
    return run;
}

/* Ask the consumer to stop (it notices within 100 ms). */
EXPORT void consumer_stop(consumer_run *run) {
    atomic_store(&run->stop, 1);
}

/* Wait for the consumer thread; returns how many events it took, or -1 if it met a
 * record it could not read. */
EXPORT int64_t consumer_join(consumer_run *run) {
    pthread_join(run->thread, NULL);
    return run->failed ? -1 : (int64_t)run->received;
}

/* The delay and the wait of event `index` in the order taken (after consumer_join). */
EXPORT uint64_t consumer_delay_ns(const consumer_run *run, uint64_t index) {
    return run->delays_ns[index];
}

EXPORT uint64_t consumer_wait_ns(const consumer_run *run, uint64_t index) {
    return run->waits_ns[index];
}

/* Free a joined consumer. */
EXPORT void consumer_free(consumer_run *run) {
    free(run->delays_ns);
    free(run->waits_ns);
    free(run->buffer);
    free(run);
}
