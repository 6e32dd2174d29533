/*
 * lean_p2p.h - the C ABI through which a native networking stack hands events to a
 * lean_p2p node.
 *
 * The node (Python, one event-loop thread) owns a lean_p2p_ring: a bounded
 * multi-producer single-consumer queue. Native threads push events into it with
 * lean_p2p_ring_push(); the push copies the event, never blocks, never takes a lock and
 * never touches the Python interpreter (no GIL). The first push after the loop drained
 * the ring writes the ring's eventfd once; the loop watches that descriptor and drains
 * the ring in batches into its mailbox lanes.
 *
 * Threading rules
 *   - lean_p2p_ring_push(), lean_p2p_ring_stats() and lean_p2p_ring_capacity(): any
 *     thread, any number of threads at once, with or without the GIL.
 *   - lean_p2p_ring_create(), lean_p2p_ring_drain() and lean_p2p_ring_eventfd(): the
 *     single consumer (the node's loop thread).
 *   - lean_p2p_ring_close(): the consumer, or one thread acting for it while the
 *     consumer does not drain. Close can wait for a producer preempted in the middle of
 *     a push, so a consumer that must never block may hand the call to a helper thread
 *     (lean_p2p.native does) and drain again only once it has returned. Never at the
 *     same time as lean_p2p_ring_drain(): both read the consumer's position.
 *   - lean_p2p_ring_destroy(): the consumer, and only once every producer thread has
 *     returned from its last push. Producers learn that the ring is closing from the
 *     LEAN_P2P_ERR_CLOSED result and must then stop pushing.
 *   - Every push that returned LEAN_P2P_OK is drained by the consumer before its close
 *     completes; a push that returned anything else was not queued and was counted.
 *
 * The ring copies the peer id and the payload during the push, so the caller may reuse
 * or free its buffers as soon as lean_p2p_ring_push() returns.
 */
#ifndef LEAN_P2P_H
#define LEAN_P2P_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEAN_P2P_ABI_VERSION 1

/* Largest peer id in bytes (libp2p peer ids in text form are about 52 bytes). */
#define LEAN_P2P_MAX_PEER_ID_LEN 128
/* Default payload limit: 10 MiB, the lean protocol's largest message. */
#define LEAN_P2P_DEFAULT_MAX_PAYLOAD (10u * 1024u * 1024u)

/* Result codes of lean_p2p_ring_push(). Zero is success, positive is "dropped because
 * the ring is full" (counted), negative is a rejected call (also counted). */
enum lean_p2p_result {
    LEAN_P2P_OK = 0,
    LEAN_P2P_FULL = 1,
    LEAN_P2P_ERR_INVALID = -1,   /* null ring or event, null buffer with a length, bad kind */
    LEAN_P2P_ERR_TOO_LARGE = -2, /* payload over the ring's limit or peer id over 128 bytes */
    LEAN_P2P_ERR_NO_MEMORY = -3, /* the payload copy could not be allocated */
    LEAN_P2P_ERR_CLOSED = -4     /* the ring is closed: stop pushing */
};

/* What happened. The payload's meaning follows the kind. */
enum lean_p2p_event_kind {
    LEAN_P2P_EVENT_PEER_CONNECTED = 1,    /* payload: the peer's address (text) */
    LEAN_P2P_EVENT_PEER_DISCONNECTED = 2, /* payload: the reason (text) */
    LEAN_P2P_EVENT_GOSSIP = 3,            /* channel: a topic; payload: snappy-compressed SSZ */
    LEAN_P2P_EVENT_REQUEST = 4,           /* channel: a protocol; request_id: ours to answer */
    LEAN_P2P_EVENT_RESPONSE_CHUNK = 5,    /* channel: a protocol; request_id: the node's */
    LEAN_P2P_EVENT_RESPONSE_END = 6,      /* the peer ended the response stream normally */
    LEAN_P2P_EVENT_REQUEST_FAILED = 7,    /* payload: the reason (text) */
    LEAN_P2P_EVENT_CUSTOM = 8             /* embedder-defined; channel and payload are opaque */
};
#define LEAN_P2P_EVENT_KIND_MAX 8

/* Gossip topics (channel of LEAN_P2P_EVENT_GOSSIP). */
enum lean_p2p_topic {
    LEAN_P2P_TOPIC_BLOCK = 1,
    LEAN_P2P_TOPIC_ATTESTATION = 2,
    LEAN_P2P_TOPIC_AGGREGATION = 3
};

/* Request/response protocols (channel of the request and response kinds). */
enum lean_p2p_protocol {
    LEAN_P2P_PROTOCOL_STATUS = 1,
    LEAN_P2P_PROTOCOL_BLOCKS_BY_ROOT = 2,
    LEAN_P2P_PROTOCOL_BLOCKS_BY_RANGE = 3
};

/* One event, as the producer describes it. Pointers are borrowed for the duration of
 * the push only. A null pointer is allowed only with a zero length. */
typedef struct lean_p2p_event {
    uint32_t kind;          /* enum lean_p2p_event_kind */
    uint32_t channel;       /* enum lean_p2p_topic or lean_p2p_protocol; 0 if none */
    uint64_t request_id;    /* request/response correlation; 0 if none */
    const uint8_t *peer_id; /* the peer's id (text form), up to 128 bytes */
    size_t peer_id_len;
    const uint8_t *payload; /* copied by the ring, up to the ring's payload limit */
    size_t payload_len;
} lean_p2p_event;

/* Counters; all monotonic except `queued`, read without stopping the producers. */
typedef struct lean_p2p_ring_stats {
    uint64_t accepted;         /* pushes that returned LEAN_P2P_OK */
    uint64_t drained;          /* events handed to the consumer */
    uint64_t refused_full;     /* pushes answered LEAN_P2P_FULL (refusals: the producer kept the event; a retry that is refused again counts again) */
    uint64_t rejected_invalid; /* LEAN_P2P_ERR_INVALID */
    uint64_t rejected_too_large;
    uint64_t rejected_no_memory;
    uint64_t rejected_closed;
    uint64_t wakeups;          /* eventfd writes: at most one per drain */
    uint64_t queued;           /* accepted - drained, at the moment of reading */
} lean_p2p_ring_stats;

typedef struct lean_p2p_ring lean_p2p_ring;

/* Producer entry point: copy one event into the ring. Any thread, never blocks. */
int lean_p2p_ring_push(lean_p2p_ring *ring, const lean_p2p_event *event);

/* A pointer-to-function type for stacks that are handed the push function at run time
 * (for example through a Rust `extern "C" fn` field) rather than linking against it. */
typedef int (*lean_p2p_push_fn)(lean_p2p_ring *ring, const lean_p2p_event *event);

/* Consumer side. capacity is rounded up to a power of two (at least 2);
 * max_payload 0 means LEAN_P2P_DEFAULT_MAX_PAYLOAD. Returns NULL on failure (errno set). */
lean_p2p_ring *lean_p2p_ring_create(size_t capacity, size_t max_payload);
void lean_p2p_ring_destroy(lean_p2p_ring *ring);
/* The eventfd (non-blocking) that becomes readable after the first push past a drain. */
int lean_p2p_ring_eventfd(const lean_p2p_ring *ring);
size_t lean_p2p_ring_capacity(const lean_p2p_ring *ring);
size_t lean_p2p_ring_max_payload(const lean_p2p_ring *ring);
void lean_p2p_ring_stats_read(const lean_p2p_ring *ring, lean_p2p_ring_stats *out);

/* Consumer: acknowledge a wakeup. Reads the eventfd, then clears the pending flag so
 * that the next push writes the eventfd again. Call before lean_p2p_ring_drain(). */
void lean_p2p_ring_begin_drain(lean_p2p_ring *ring);
/* Consumer: mark the ring as pending without an eventfd write, when the consumer has
 * scheduled another drain itself (pushes meanwhile need not wake it). */
void lean_p2p_ring_mark_pending(lean_p2p_ring *ring);

/* Each drained event is written to the consumer's buffer as a packed record: this
 * header (little-endian on the supported platforms, no padding), then peer_id_len
 * bytes of peer id, then payload_len bytes of payload. */
typedef struct lean_p2p_record_header {
    uint32_t kind;
    uint32_t channel;
    uint64_t request_id;
    uint32_t peer_id_len;
    uint32_t payload_len;
} lean_p2p_record_header;

/* Consumer: move up to max_events published events into buffer (capacity bytes).
 * Returns the number of records written and stores the bytes used in *used. Stops
 * early at the first record that does not fit and stores its size in *needed (else
 * *needed is 0): the consumer calls again, with a larger buffer if nothing fitted.
 * An event still being written by a producer ends the batch; that producer's wakeup
 * brings the consumer back for it. */
size_t lean_p2p_ring_drain(lean_p2p_ring *ring, uint8_t *buffer, size_t capacity,
                           size_t max_events, size_t *used, size_t *needed);

/* Consumer, or a thread acting for it while it does not drain (see the rules above):
 * close the ring. Later pushes return LEAN_P2P_ERR_CLOSED; pushes that were already
 * accepted stay queued. Waits (briefly: a push never blocks) until every accepted push
 * has finished writing its slot, so that draining after it returns, until
 * lean_p2p_ring_drain() returns 0, takes every accepted event. Idempotent. */
void lean_p2p_ring_close(lean_p2p_ring *ring);
int lean_p2p_ring_is_closed(const lean_p2p_ring *ring);

const char *lean_p2p_result_name(int result);
int lean_p2p_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LEAN_P2P_H */
