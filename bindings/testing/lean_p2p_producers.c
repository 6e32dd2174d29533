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
            uint64_t slot = started + sequence * run->interval_ns;
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
 * paced in bursts of `burst` events (0 or 1: each event paced alone).
 * payload_len is raised to the 24-byte stamp if smaller.
 * on_thread_exit (may be NULL) runs on each producer thread after its last push.
 * Returns NULL if memory or threads could not be had. */
EXPORT producer_run *producers_start_counts(lean_p2p_push_fn push, lean_p2p_ring *ring,
                                            int threads, const uint64_t *counts,
                                            uint32_t payload_len, int retry_when_full,
                                            int record_costs, uint64_t interval_ns,
                                            uint32_t burst, void (*on_thread_exit)(void)) {
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
                                  payload_len, retry_when_full, record_costs, 0, 1,
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
