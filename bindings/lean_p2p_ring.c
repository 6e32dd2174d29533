/*
 * lean_p2p_ring.c - bounded MPSC event ring with a coalesced eventfd wakeup.
 *
 * Producers: any native thread, never blocking, never touching Python. Consumer: the
 * node's loop thread. The queue is the bounded array queue with per-slot sequence
 * numbers (each slot says whether it is free for position p, or holds the event of
 * position p), so producers only contend on one compare-and-swap of `tail`.
 *
 * Wakeup protocol (the same rule as the Python mailbox: publish, then wake; clear, then
 * read):
 *   producer: publish the slot (release store of its sequence), THEN exchange
 *             `wake_pending` to 1; only the producer that saw 0 writes the eventfd.
 *   consumer: exchange `wake_pending` to 0, THEN read slots.
 * Both exchanges are acq_rel read-modify-writes on one variable, so they are totally
 * ordered: a producer whose exchange comes after the consumer's clear sees 0 and wakes
 * the consumer; one whose exchange comes before it is seen by that drain, because the
 * clear reads (and so synchronises with) the value that producer's exchange wrote.
 *
 * Close: one bit of `tail` marks the ring closed. A producer claims a slot with a
 * compare-and-swap on the whole of `tail`, so no claim can succeed once the bit is set,
 * and the position at which it was set bounds every accepted event.
 */
#define _GNU_SOURCE
#include "lean_p2p.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define LEAN_P2P_EXPORT __attribute__((visibility("default")))

#define CACHE_LINE 64
#define CLOSED_BIT ((size_t)1 << (sizeof(size_t) * 8 - 1))
/* Peer id and payload live in the slot when they fit together in this many bytes;
 * larger events carry one heap block made before the slot is claimed. 216 makes a
 * slot exactly 256 bytes on LP64. */
#define INLINE_BYTES 216
#define RECORD_HEADER_BYTES 24
_Static_assert(sizeof(lean_p2p_record_header) == RECORD_HEADER_BYTES, "packed record header");

typedef struct slot {
    _Atomic size_t sequence;
    uint32_t kind;
    uint32_t channel;
    uint64_t request_id;
    uint32_t peer_id_len;
    uint32_t payload_len;
    uint8_t *heap; /* peer id then payload, when they do not fit inline; else NULL */
    uint8_t inline_bytes[INLINE_BYTES];
} slot;

struct lean_p2p_ring {
    /* Producers write `tail`; the consumer writes `head`; both are touched constantly,
     * so each sits on its own cache line, away from the read-mostly configuration. */
    _Alignas(CACHE_LINE) _Atomic size_t tail;
    _Alignas(CACHE_LINE) _Atomic size_t head;
    _Alignas(CACHE_LINE) atomic_int wake_pending;
    _Alignas(CACHE_LINE) _Atomic uint64_t refused_full;
    _Atomic uint64_t rejected_invalid;
    _Atomic uint64_t rejected_too_large;
    _Atomic uint64_t rejected_no_memory;
    _Atomic uint64_t rejected_closed;
    _Atomic uint64_t wakeups;
    _Alignas(CACHE_LINE) size_t mask;
    size_t capacity;
    size_t max_payload;
    int event_fd;
    slot *slots;
};

static void count(_Atomic uint64_t *counter) {
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static size_t round_up_power_of_two(size_t value) {
    size_t power = 2;
    while (power < value) {
        power <<= 1;
    }
    return power;
}

LEAN_P2P_EXPORT lean_p2p_ring *lean_p2p_ring_create(size_t capacity, size_t max_payload) {
    if (capacity == 0 || capacity > ((size_t)1 << 30) || max_payload > UINT32_MAX) {
        errno = EINVAL;
        return NULL;
    }
    lean_p2p_ring *ring = aligned_alloc(CACHE_LINE, sizeof(*ring));
    if (ring == NULL) {
        return NULL;
    }
    memset(ring, 0, sizeof(*ring));
    ring->capacity = round_up_power_of_two(capacity);
    ring->mask = ring->capacity - 1;
    ring->max_payload = max_payload == 0 ? LEAN_P2P_DEFAULT_MAX_PAYLOAD : max_payload;
    ring->slots = aligned_alloc(CACHE_LINE, ring->capacity * sizeof(slot));
    if (ring->slots == NULL) {
        free(ring);
        return NULL;
    }
    for (size_t index = 0; index < ring->capacity; index++) {
        atomic_init(&ring->slots[index].sequence, index);
        ring->slots[index].heap = NULL;
    }
    ring->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ring->event_fd < 0) {
        int saved = errno;
        free(ring->slots);
        free(ring);
        errno = saved;
        return NULL;
    }
    atomic_init(&ring->tail, 0);
    atomic_init(&ring->head, 0);
    atomic_init(&ring->wake_pending, 0);
    return ring;
}

LEAN_P2P_EXPORT void lean_p2p_ring_destroy(lean_p2p_ring *ring) {
    if (ring == NULL) {
        return;
    }
    /* Events still queued are discarded with their heap blocks. */
    for (size_t index = 0; index < ring->capacity; index++) {
        free(ring->slots[index].heap);
    }
    close(ring->event_fd);
    free(ring->slots);
    free(ring);
}

LEAN_P2P_EXPORT int lean_p2p_ring_eventfd(const lean_p2p_ring *ring) {
    return ring->event_fd;
}

LEAN_P2P_EXPORT size_t lean_p2p_ring_capacity(const lean_p2p_ring *ring) {
    return ring->capacity;
}

LEAN_P2P_EXPORT size_t lean_p2p_ring_max_payload(const lean_p2p_ring *ring) {
    return ring->max_payload;
}

static int validate(const lean_p2p_ring *ring, const lean_p2p_event *event) {
    if (event == NULL || event->kind == 0 || event->kind > LEAN_P2P_EVENT_KIND_MAX) {
        return LEAN_P2P_ERR_INVALID;
    }
    if ((event->peer_id == NULL && event->peer_id_len != 0) ||
        (event->payload == NULL && event->payload_len != 0)) {
        return LEAN_P2P_ERR_INVALID;
    }
    if (event->peer_id_len > LEAN_P2P_MAX_PEER_ID_LEN ||
        event->payload_len > ring->max_payload) {
        return LEAN_P2P_ERR_TOO_LARGE;
    }
    return LEAN_P2P_OK;
}

static void count_rejection(lean_p2p_ring *ring, int result) {
    switch (result) {
    case LEAN_P2P_FULL:
        count(&ring->refused_full);
        break;
    case LEAN_P2P_ERR_TOO_LARGE:
        count(&ring->rejected_too_large);
        break;
    case LEAN_P2P_ERR_NO_MEMORY:
        count(&ring->rejected_no_memory);
        break;
    case LEAN_P2P_ERR_CLOSED:
        count(&ring->rejected_closed);
        break;
    default:
        count(&ring->rejected_invalid);
        break;
    }
}

/* Claim the next free slot: returns it and stores its position, or NULL with the
 * reason (full or closed) in *result. */
static slot *claim(lean_p2p_ring *ring, size_t *position, int *result) {
    size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    for (;;) {
        if (tail & CLOSED_BIT) {
            *result = LEAN_P2P_ERR_CLOSED;
            return NULL;
        }
        slot *candidate = &ring->slots[tail & ring->mask];
        size_t sequence = atomic_load_explicit(&candidate->sequence, memory_order_acquire);
        intptr_t lag = (intptr_t)(sequence - tail);
        if (lag == 0) {
            /* Free for this position: race the other producers for it. On failure the
             * CAS reloads `tail` (which may now carry the closed bit). */
            if (atomic_compare_exchange_weak_explicit(&ring->tail, &tail, tail + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *position = tail;
                return candidate;
            }
        } else if (lag < 0) {
            /* The consumer has not yet freed the slot from one lap ago: full. */
            *result = LEAN_P2P_FULL;
            return NULL;
        } else {
            /* Another producer claimed this position since we read `tail`. */
            tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
        }
    }
}

static void wake(lean_p2p_ring *ring) {
    /* Only the first push after a drain cleared the flag pays for the syscall. */
    if (atomic_exchange_explicit(&ring->wake_pending, 1, memory_order_acq_rel) == 0) {
        uint64_t one = 1;
        /* EAGAIN would mean the counter is at its maximum, i.e. already readable. */
        ssize_t written = write(ring->event_fd, &one, sizeof(one));
        (void)written;
        count(&ring->wakeups);
    }
}

LEAN_P2P_EXPORT int lean_p2p_ring_push(lean_p2p_ring *ring, const lean_p2p_event *event) {
    if (ring == NULL) {
        return LEAN_P2P_ERR_INVALID; /* nowhere to count it */
    }
    int result = validate(ring, event);
    if (result != LEAN_P2P_OK) {
        count_rejection(ring, result);
        return result;
    }
    size_t peer_id_len = event->peer_id_len;
    size_t payload_len = event->payload_len;
    size_t total = peer_id_len + payload_len;
    uint8_t *heap = NULL;
    if (total > INLINE_BYTES) {
        /* Allocate and copy before claiming: a claimed slot must be published quickly
         * (close waits for it), and a failed allocation must not leave a hole. */
        heap = malloc(total);
        if (heap == NULL) {
            count_rejection(ring, LEAN_P2P_ERR_NO_MEMORY);
            return LEAN_P2P_ERR_NO_MEMORY;
        }
        if (peer_id_len != 0) {
            memcpy(heap, event->peer_id, peer_id_len);
        }
        memcpy(heap + peer_id_len, event->payload, payload_len);
    }
    size_t position = 0;
    slot *target = claim(ring, &position, &result);
    if (target == NULL) {
        free(heap);
        count_rejection(ring, result);
        return result;
    }
    target->kind = event->kind;
    target->channel = event->channel;
    target->request_id = event->request_id;
    target->peer_id_len = (uint32_t)peer_id_len;
    target->payload_len = (uint32_t)payload_len;
    target->heap = heap;
    if (heap == NULL) {
        if (peer_id_len != 0) {
            memcpy(target->inline_bytes, event->peer_id, peer_id_len);
        }
        if (payload_len != 0) {
            memcpy(target->inline_bytes + peer_id_len, event->payload, payload_len);
        }
    }
    /* Publish, then wake (see the file comment). */
    atomic_store_explicit(&target->sequence, position + 1, memory_order_release);
    wake(ring);
    return LEAN_P2P_OK;
}

LEAN_P2P_EXPORT void lean_p2p_ring_begin_drain(lean_p2p_ring *ring) {
    uint64_t counter;
    /* Reset the eventfd's readiness first; EAGAIN just means nothing was written. */
    ssize_t got = read(ring->event_fd, &counter, sizeof(counter));
    (void)got;
    /* Clear, then read: this exchange precedes every slot read of the coming drain. */
    atomic_exchange_explicit(&ring->wake_pending, 0, memory_order_acq_rel);
}

LEAN_P2P_EXPORT void lean_p2p_ring_mark_pending(lean_p2p_ring *ring) {
    atomic_exchange_explicit(&ring->wake_pending, 1, memory_order_acq_rel);
}

LEAN_P2P_EXPORT size_t lean_p2p_ring_drain(lean_p2p_ring *ring, uint8_t *buffer,
                                           size_t capacity, size_t max_events, size_t *used,
                                           size_t *needed) {
    size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    size_t offset = 0;
    size_t drained = 0;
    *needed = 0;
    while (drained < max_events) {
        slot *source = &ring->slots[head & ring->mask];
        size_t sequence = atomic_load_explicit(&source->sequence, memory_order_acquire);
        if (sequence != head + 1) {
            break; /* empty, or a producer is still writing this slot */
        }
        size_t data_len = (size_t)source->peer_id_len + source->payload_len;
        size_t record_len = RECORD_HEADER_BYTES + data_len;
        if (record_len > capacity - offset) {
            *needed = record_len;
            break;
        }
        lean_p2p_record_header header = {
            .kind = source->kind,
            .channel = source->channel,
            .request_id = source->request_id,
            .peer_id_len = source->peer_id_len,
            .payload_len = source->payload_len,
        };
        memcpy(buffer + offset, &header, RECORD_HEADER_BYTES);
        const uint8_t *data = source->heap != NULL ? source->heap : source->inline_bytes;
        if (data_len != 0) {
            memcpy(buffer + offset + RECORD_HEADER_BYTES, data, data_len);
        }
        free(source->heap);
        source->heap = NULL;
        offset += record_len;
        /* Hand the slot back to producers for the position one lap ahead. */
        atomic_store_explicit(&source->sequence, head + ring->capacity, memory_order_release);
        head++;
        drained++;
    }
    atomic_store_explicit(&ring->head, head, memory_order_relaxed);
    *used = offset;
    return drained;
}

LEAN_P2P_EXPORT void lean_p2p_ring_close(lean_p2p_ring *ring) {
    size_t previous = atomic_fetch_or_explicit(&ring->tail, CLOSED_BIT, memory_order_acq_rel);
    size_t end = previous & ~CLOSED_BIT;
    size_t position = atomic_load_explicit(&ring->head, memory_order_relaxed);
    /* Every position below `end` was claimed by a push that will return OK; wait until
     * each has been published. A push holds its slot only for a copy, so this is short
     * unless the producer thread is preempted right there. */
    for (; position < end; position++) {
        slot *pending = &ring->slots[position & ring->mask];
        while (atomic_load_explicit(&pending->sequence, memory_order_acquire) != position + 1) {
            sched_yield();
        }
    }
}

LEAN_P2P_EXPORT int lean_p2p_ring_is_closed(const lean_p2p_ring *ring) {
    return (atomic_load_explicit(&ring->tail, memory_order_relaxed) & CLOSED_BIT) != 0;
}

LEAN_P2P_EXPORT void lean_p2p_ring_stats_read(const lean_p2p_ring *ring,
                                              lean_p2p_ring_stats *out) {
    /* Every claimed position is an accepted push, and every drained one moved `head`,
     * so the hot path needs no counters of its own. */
    size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed) & ~CLOSED_BIT;
    out->accepted = tail;
    out->drained = head;
    out->queued = tail >= head ? tail - head : 0;
    out->refused_full = atomic_load_explicit(&ring->refused_full, memory_order_relaxed);
    out->rejected_invalid = atomic_load_explicit(&ring->rejected_invalid, memory_order_relaxed);
    out->rejected_too_large =
        atomic_load_explicit(&ring->rejected_too_large, memory_order_relaxed);
    out->rejected_no_memory =
        atomic_load_explicit(&ring->rejected_no_memory, memory_order_relaxed);
    out->rejected_closed = atomic_load_explicit(&ring->rejected_closed, memory_order_relaxed);
    out->wakeups = atomic_load_explicit(&ring->wakeups, memory_order_relaxed);
}

LEAN_P2P_EXPORT const char *lean_p2p_result_name(int result) {
    switch (result) {
    case LEAN_P2P_OK:
        return "ok";
    case LEAN_P2P_FULL:
        return "full";
    case LEAN_P2P_ERR_INVALID:
        return "invalid";
    case LEAN_P2P_ERR_TOO_LARGE:
        return "too_large";
    case LEAN_P2P_ERR_NO_MEMORY:
        return "no_memory";
    case LEAN_P2P_ERR_CLOSED:
        return "closed";
    default:
        return "unknown";
    }
}

LEAN_P2P_EXPORT int lean_p2p_abi_version(void) {
    return LEAN_P2P_ABI_VERSION;
}
