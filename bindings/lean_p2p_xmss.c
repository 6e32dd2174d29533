/* XMSS verification of the lean consensus signature scheme; see lean_p2p_xmss.h.
 *
 * Structure follows the verifier of leanSpec (src/lean_spec/spec/crypto/xmss): the
 * message is hashed with the signature's randomness into a codeword (target-sum
 * encoding), each Winternitz chain is walked from the released hash to its end, the
 * chain ends are hashed into the leaf, and the leaf climbs the authentication path to
 * the root in the public key. Every hash is Poseidon over KoalaBear:
 *
 *   chain step  : width-16 compression of digest || parameter || chain tweak
 *   tree node   : width-24 compression of parameter || tree tweak || left || right
 *   leaf        : width-24 sponge over parameter || tree tweak || chain ends
 *   message     : width-24 compression of message || parameter || epoch || rho
 *
 * Field elements are kept as canonical uint32 values below p. Nothing here allocates;
 * everything lives on the caller's stack.
 */
#include "lean_p2p_xmss.h"

#include <string.h>

#include "lean_p2p_xmss_constants.h"

#define LEAN_P2P_EXPORT __attribute__((visibility("default")))

#define P LEAN_XMSS_MODULUS
#define HASH_LEN 8      /* field elements per digest */
#define PARAMETER_LEN 5 /* the public parameter */
#define TWEAK_LEN 2     /* a tweak, in base-p limbs */
#define MESSAGE_LEN 9   /* a 32-byte message, in base-p limbs */
#define RAND_LEN 7      /* the encoding randomness rho */
#define CAPACITY 9      /* the sponge's capacity */
#define FULL_ROUNDS_HALF 4
#define MAX_WIDTH 24
#define MAX_DIMENSION 46
#define MAX_LOG_LIFETIME 32

#define TWEAK_PREFIX_CHAIN 0x00u
#define TWEAK_PREFIX_TREE 0x01u
#define TWEAK_PREFIX_MESSAGE 0x02u

typedef struct {
    unsigned log_lifetime;
    unsigned dimension;
    unsigned base;
    unsigned z;
    unsigned q;
    unsigned target_sum;
} xmss_config;

static const xmss_config CONFIGS[] = {
    [LEAN_XMSS_CONFIG_TEST] = {8, 4, 8, 8, 127, 6},
    [LEAN_XMSS_CONFIG_PROD] = {32, 46, 8, 8, 127, 200},
};

static const xmss_config *config_of(int config) {
    if (config != LEAN_XMSS_CONFIG_TEST && config != LEAN_XMSS_CONFIG_PROD) {
        return NULL;
    }
    return &CONFIGS[config];
}

/* ------------------------------------------------------------------ the field */

static inline uint32_t add(uint32_t a, uint32_t b) {
    uint32_t sum = a + b; /* both below 2^31: no overflow */
    return sum >= P ? sum - P : sum;
}

static inline uint32_t mul(uint32_t a, uint32_t b) {
    return (uint32_t)(((uint64_t)a * b) % P);
}

static inline uint32_t cube(uint32_t x) {
    return mul(mul(x, x), x);
}

/* --------------------------------------------------------- Poseidon (Hades) */

typedef struct {
    size_t width;
    unsigned partial_rounds;
    const uint32_t *constants;
    const uint32_t *mds_first_row;
    /* The partial rounds with sparse matrices (scripts/gen_xmss_constants.py says how
     * they are derived): a scalar per round for element 0, the constants of the first
     * closing full round with what the partial rounds carried over, and per round the
     * sparse matrix's corner, first row and first column (width - 1 each), after one
     * dense (width - 1)^2 product at the start. */
    const uint32_t *partial_scalars;
    const uint32_t *closing_constants;
    const uint32_t *sparse_00;
    const uint32_t *sparse_row;
    const uint32_t *sparse_column;
    const uint32_t *first_dense;
} poseidon_params;

static const poseidon_params POSEIDON_16 = {
    16,
    20,
    LEAN_XMSS_CONSTANTS_16,
    LEAN_XMSS_MDS_FIRST_ROW_16,
    LEAN_XMSS_PARTIAL_SCALARS_16,
    LEAN_XMSS_CLOSING_CONSTANTS_16,
    LEAN_XMSS_SPARSE_00_16,
    LEAN_XMSS_SPARSE_ROW_16,
    LEAN_XMSS_SPARSE_COLUMN_16,
    LEAN_XMSS_FIRST_DENSE_16,
};
static const poseidon_params POSEIDON_24 = {
    24,
    23,
    LEAN_XMSS_CONSTANTS_24,
    LEAN_XMSS_MDS_FIRST_ROW_24,
    LEAN_XMSS_PARTIAL_SCALARS_24,
    LEAN_XMSS_CLOSING_CONSTANTS_24,
    LEAN_XMSS_SPARSE_00_24,
    LEAN_XMSS_SPARSE_ROW_24,
    LEAN_XMSS_SPARSE_COLUMN_24,
    LEAN_XMSS_FIRST_DENSE_24,
};

/* Sum of products of field elements, each below 2^62, folded back into the field. */
static inline uint32_t dot(const uint32_t *a, const uint32_t *b, size_t n) {
    unsigned __int128 sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (uint64_t)a[i] * b[i];
    }
    const uint64_t two_64_mod_p = (uint64_t)(((unsigned __int128)1 << 64) % P);
    return (uint32_t)(((uint64_t)(sum >> 64) * two_64_mod_p + (uint64_t)sum % P) % P);
}

/* y = C x for the circulant matrix C[i][j] = r[(j - i) mod n]. The matrices are expanded
 * once into row-major tables so each row is a contiguous dot product the compiler can
 * vectorize. Width 24's entries are full field elements, so each is split into a 16-bit
 * low half and a high half: both dot products stay below 2^53 and need no 128-bit sums. */
static uint32_t MDS_16[16][16];
static uint32_t MDS_24_LOW[24][24];
static uint32_t MDS_24_HIGH[24][24];
static int mds_ready; /* 0 until the tables are written; racing writers write the same */

static void expand_mds(void) {
    if (__atomic_load_n(&mds_ready, __ATOMIC_ACQUIRE)) {
        return;
    }
    for (size_t i = 0; i < 16; i++) {
        for (size_t j = 0; j < 16; j++) {
            MDS_16[i][j] = LEAN_XMSS_MDS_FIRST_ROW_16[(j + 16 - i) % 16];
        }
    }
    for (size_t i = 0; i < 24; i++) {
        for (size_t j = 0; j < 24; j++) {
            uint32_t entry = LEAN_XMSS_MDS_FIRST_ROW_24[(j + 24 - i) % 24];
            MDS_24_LOW[i][j] = entry & 0xffffu;
            MDS_24_HIGH[i][j] = entry >> 16;
        }
    }
    __atomic_store_n(&mds_ready, 1, __ATOMIC_RELEASE);
}

/* Built twice, for AVX2 and for any x86-64, and chosen when loaded: the dot products
 * then run four lanes wide where the processor can. */
#if defined(__x86_64__) && defined(__GNUC__)
#define LEAN_XMSS_VECTORIZED __attribute__((target_clones("avx2", "default")))
#else
#define LEAN_XMSS_VECTORIZED
#endif

LEAN_XMSS_VECTORIZED static void mds_multiply_16(uint32_t *state) {
    /* Width 16's first row is small (below 2^7): a row's 16 products stay below 2^42. */
    uint32_t result[16];
    for (size_t i = 0; i < 16; i++) {
        uint64_t sum = 0;
        for (size_t j = 0; j < 16; j++) {
            sum += (uint64_t)MDS_16[i][j] * state[j];
        }
        result[i] = (uint32_t)(sum % P);
    }
    memcpy(state, result, sizeof(result));
}

LEAN_XMSS_VECTORIZED static void mds_multiply_24(uint32_t *state) {
    uint32_t result[24];
    for (size_t i = 0; i < 24; i++) {
        uint64_t low = 0;
        uint64_t high = 0;
        for (size_t j = 0; j < 24; j++) {
            low += (uint64_t)MDS_24_LOW[i][j] * state[j];
            high += (uint64_t)MDS_24_HIGH[i][j] * state[j];
        }
        result[i] = (uint32_t)(((high % P << 16) + low) % P);
    }
    memcpy(state, result, sizeof(result));
}

static void mds_multiply(uint32_t *state, const poseidon_params *params) {
    if (params->width == 16) {
        mds_multiply_16(state);
    } else {
        mds_multiply_24(state);
    }
}

static void add_round_constants(uint32_t *state, const uint32_t *constants, size_t width) {
    for (size_t i = 0; i < width; i++) {
        state[i] = add(state[i], constants[i]);
    }
}

static void full_round(uint32_t *state, const poseidon_params *params, const uint32_t *rc) {
    add_round_constants(state, rc, params->width);
    for (size_t i = 0; i < params->width; i++) {
        state[i] = cube(state[i]);
    }
    mds_multiply(state, params);
}

static void permute(uint32_t *state, const poseidon_params *params) {
    expand_mds();
    const size_t width = params->width;
    const size_t rest = width - 1;
    const uint32_t *rc = params->constants;
    for (unsigned round = 0; round < FULL_ROUNDS_HALF; round++, rc += width) {
        full_round(state, params, rc);
    }
    /* Partial rounds: one dense product of elements 1.. (the first round's D), then per
     * round the scalar, the S-box on element 0 and the sparse matrix. */
    uint32_t tail[MAX_WIDTH];
    for (size_t i = 0; i < rest; i++) {
        tail[i] = dot(params->first_dense + i * rest, state + 1, rest);
    }
    memcpy(state + 1, tail, rest * sizeof(uint32_t));
    for (unsigned round = 0; round < params->partial_rounds; round++) {
        const uint32_t x0 = cube(add(state[0], params->partial_scalars[round]));
        const uint32_t *row = params->sparse_row + (size_t)round * rest;
        const uint32_t *column = params->sparse_column + (size_t)round * rest;
        uint32_t first = dot(row, state + 1, rest);
        state[0] = add(mul(params->sparse_00[round], x0), first);
        for (size_t i = 0; i < rest; i++) {
            state[i + 1] = add(state[i + 1], mul(column[i], x0));
        }
    }
    rc += (size_t)params->partial_rounds * width;
    full_round(state, params, params->closing_constants);
    rc += width;
    for (unsigned round = 1; round < FULL_ROUNDS_HALF; round++, rc += width) {
        full_round(state, params, rc);
    }
}

/* Truncate(Permute(padded) + padded): `input` of `length` elements zero-padded to the
 * width; the first `out_length` elements land in `out`. */
static void compress(const uint32_t *input, size_t length, const poseidon_params *params,
                     uint32_t *out, size_t out_length) {
    uint32_t padded[MAX_WIDTH] = {0};
    uint32_t state[MAX_WIDTH];
    memcpy(padded, input, length * sizeof(uint32_t));
    memcpy(state, padded, sizeof(padded));
    permute(state, params);
    for (size_t i = 0; i < out_length; i++) {
        out[i] = add(state[i], padded[i]);
    }
}

/* ------------------------------------------------------- base-p decomposition */

/* Write the little-endian multi-word integer `words` (n 32-bit words) as `limbs` base-p
 * digits, least significant first. Returns 0 if it fits, -1 if not. */
static int to_base_p(const uint32_t *words, size_t n, uint32_t *limbs, size_t limb_count) {
    uint32_t value[MAX_WIDTH];
    memcpy(value, words, n * sizeof(uint32_t));
    for (size_t limb = 0; limb < limb_count; limb++) {
        uint64_t remainder = 0;
        for (size_t i = n; i-- > 0;) {
            uint64_t current = (remainder << 32) | value[i];
            value[i] = (uint32_t)(current / P);
            remainder = current % P;
        }
        limbs[limb] = (uint32_t)remainder;
    }
    for (size_t i = 0; i < n; i++) {
        if (value[i] != 0) {
            return -1;
        }
    }
    return 0;
}

static void u64_to_base_p(uint64_t value, uint32_t *limbs, size_t limb_count) {
    const uint32_t words[2] = {(uint32_t)value, (uint32_t)(value >> 32)};
    (void)to_base_p(words, 2, limbs, limb_count); /* callers' values always fit */
}

/* ------------------------------------------------------------- tweakable hash */

static void chain_tweak(uint64_t epoch, unsigned chain_index, unsigned step, uint32_t *out) {
    uint64_t packed = (epoch << 24) | ((uint64_t)chain_index << 16) | ((uint64_t)step << 8) |
                      TWEAK_PREFIX_CHAIN;
    u64_to_base_p(packed, out, TWEAK_LEN);
}

static void tree_tweak(unsigned level, uint64_t index, uint32_t *out) {
    uint64_t packed = ((uint64_t)level << 40) | (index << 8) | TWEAK_PREFIX_TREE;
    u64_to_base_p(packed, out, TWEAK_LEN);
}

/* Walk a chain from `digest` at `start_step` for `steps` steps, in place. */
static void hash_chain(const uint32_t *parameter, uint64_t epoch, unsigned chain_index,
                       unsigned start_step, unsigned steps, uint32_t *digest) {
    uint32_t input[HASH_LEN + PARAMETER_LEN + TWEAK_LEN];
    memcpy(input + HASH_LEN, parameter, PARAMETER_LEN * sizeof(uint32_t));
    for (unsigned i = 0; i < steps; i++) {
        memcpy(input, digest, HASH_LEN * sizeof(uint32_t));
        /* steps are 1-indexed: step 1 is the first hash after the chain start */
        chain_tweak(epoch, chain_index, start_step + i + 1, input + HASH_LEN + PARAMETER_LEN);
        compress(input, sizeof(input) / sizeof(input[0]), &POSEIDON_16, digest, HASH_LEN);
    }
}

static void tree_node(const uint32_t *parameter, unsigned level, uint64_t index,
                      const uint32_t *left, const uint32_t *right, uint32_t *out) {
    uint32_t input[PARAMETER_LEN + TWEAK_LEN + 2 * HASH_LEN];
    memcpy(input, parameter, PARAMETER_LEN * sizeof(uint32_t));
    tree_tweak(level, index, input + PARAMETER_LEN);
    memcpy(input + PARAMETER_LEN + TWEAK_LEN, left, HASH_LEN * sizeof(uint32_t));
    memcpy(input + PARAMETER_LEN + TWEAK_LEN + HASH_LEN, right, HASH_LEN * sizeof(uint32_t));
    compress(input, sizeof(input) / sizeof(input[0]), &POSEIDON_24, out, HASH_LEN);
}

/* The sponge's capacity for a leaf of `dimension` chains: the packed shape of the input
 * (parameter, tweak, dimension and digest lengths, 32 bits each) compressed. It depends
 * on the dimension alone, so each configuration's is computed once and kept. */
static void compute_leaf_capacity(unsigned dimension, uint32_t *capacity) {
    /* ((5 << 32 | 2) << 32 | dimension) << 32 | 8, as four little-endian words */
    const uint32_t words[4] = {HASH_LEN, dimension, TWEAK_LEN, PARAMETER_LEN};
    uint32_t limbs[MAX_WIDTH];
    (void)to_base_p(words, 4, limbs, MAX_WIDTH);
    compress(limbs, MAX_WIDTH, &POSEIDON_24, capacity, CAPACITY);
}

static void leaf_capacity(unsigned dimension, uint32_t *capacity) {
    /* One slot per configuration's dimension; racing first callers write equal values,
     * and the flag is set (release) only after the values. */
    static uint32_t kept[2][CAPACITY];
    static int ready[2];
    const size_t slot = dimension == CONFIGS[LEAN_XMSS_CONFIG_TEST].dimension ? 0 : 1;
    if (dimension != CONFIGS[slot == 0 ? LEAN_XMSS_CONFIG_TEST : LEAN_XMSS_CONFIG_PROD].dimension) {
        compute_leaf_capacity(dimension, capacity);
        return;
    }
    if (!__atomic_load_n(&ready[slot], __ATOMIC_ACQUIRE)) {
        uint32_t computed[CAPACITY];
        compute_leaf_capacity(dimension, computed);
        for (size_t i = 0; i < CAPACITY; i++) {
            __atomic_store_n(&kept[slot][i], computed[i], __ATOMIC_RELAXED);
        }
        __atomic_store_n(&ready[slot], 1, __ATOMIC_RELEASE);
    }
    for (size_t i = 0; i < CAPACITY; i++) {
        capacity[i] = __atomic_load_n(&kept[slot][i], __ATOMIC_RELAXED);
    }
}

/* The leaf: a width-24 sponge over parameter || tree tweak (level 0) || chain ends. */
static void leaf_hash(const uint32_t *parameter, uint64_t position, unsigned dimension,
                      const uint32_t *chain_ends, uint32_t *out) {
    enum { RATE = MAX_WIDTH - CAPACITY };
    uint32_t state[MAX_WIDTH] = {0};
    leaf_capacity(dimension, state);
    /* The input, streamed in rate-sized chunks, zero-padded at the end. */
    const size_t header_length = PARAMETER_LEN + TWEAK_LEN;
    uint32_t header[PARAMETER_LEN + TWEAK_LEN];
    memcpy(header, parameter, PARAMETER_LEN * sizeof(uint32_t));
    tree_tweak(0, position, header + PARAMETER_LEN);
    const size_t total = header_length + (size_t)dimension * HASH_LEN;
    for (size_t start = 0; start < total; start += RATE) {
        for (size_t k = 0; k < RATE; k++) {
            size_t at = start + k;
            uint32_t element = 0;
            if (at < header_length) {
                element = header[at];
            } else if (at < total) {
                element = chain_ends[at - header_length];
            }
            state[CAPACITY + k] = element;
        }
        permute(state, &POSEIDON_24);
    }
    memcpy(out, state + CAPACITY, HASH_LEN * sizeof(uint32_t));
}

/* -------------------------------------------------------------- the encoding */

/* The codeword of `message` at `epoch` with randomness `rho`: DIMENSION digits, or -1
 * when the aborting decode rejects or the digits miss the target sum. */
static int codeword(const xmss_config *config, const uint32_t *parameter, uint64_t epoch,
                    const uint32_t *rho, const uint8_t *message, uint8_t *digits) {
    uint32_t input[MESSAGE_LEN + PARAMETER_LEN + TWEAK_LEN + RAND_LEN];
    uint32_t message_words[8];
    for (size_t i = 0; i < 8; i++) {
        message_words[i] = (uint32_t)message[4 * i] | (uint32_t)message[4 * i + 1] << 8 |
                           (uint32_t)message[4 * i + 2] << 16 | (uint32_t)message[4 * i + 3] << 24;
    }
    (void)to_base_p(message_words, 8, input, MESSAGE_LEN); /* 2^256 < p^9 */
    memcpy(input + MESSAGE_LEN, parameter, PARAMETER_LEN * sizeof(uint32_t));
    u64_to_base_p((epoch << 8) | TWEAK_PREFIX_MESSAGE, input + MESSAGE_LEN + PARAMETER_LEN,
                  TWEAK_LEN);
    memcpy(input + MESSAGE_LEN + PARAMETER_LEN + TWEAK_LEN, rho, RAND_LEN * sizeof(uint32_t));

    const unsigned elements = (config->dimension + config->z - 1) / config->z;
    uint32_t hashed[MAX_WIDTH];
    compress(input, sizeof(input) / sizeof(input[0]), &POSEIDON_24, hashed, elements);

    uint64_t threshold = config->q;
    for (unsigned i = 0; i < config->z; i++) {
        threshold *= config->base;
    }
    unsigned produced = 0;
    unsigned sum = 0;
    for (unsigned e = 0; e < elements; e++) {
        if (hashed[e] >= threshold) {
            return -1; /* the one value outside every group: p - 1 */
        }
        uint32_t quotient = hashed[e] / config->q;
        for (unsigned k = 0; k < config->z; k++) {
            uint8_t digit = (uint8_t)(quotient % config->base);
            quotient /= config->base;
            if (produced < config->dimension) {
                digits[produced++] = digit;
                sum += digit;
            }
        }
    }
    return sum == config->target_sum ? 0 : -1;
}

/* The root a leaf of `chain_ends` at `slot` climbs to through `siblings`, leaf first. */
static void root_of_leaf(const xmss_config *config, const uint32_t *parameter, uint64_t slot,
                         const uint32_t *chain_ends, const uint32_t *siblings, uint32_t *root) {
    uint32_t node[HASH_LEN];
    leaf_hash(parameter, slot, config->dimension, chain_ends, node);
    uint64_t position = slot;
    for (unsigned level = 0; level < config->log_lifetime; level++) {
        const uint32_t *sibling = siblings + (size_t)level * HASH_LEN;
        uint32_t parent[HASH_LEN];
        /* the current node is the left child when its position is even */
        if (position % 2 == 0) {
            tree_node(parameter, level + 1, position / 2, node, sibling, parent);
        } else {
            tree_node(parameter, level + 1, position / 2, sibling, node, parent);
        }
        position /= 2;
        memcpy(node, parent, sizeof(node));
    }
    memcpy(root, node, sizeof(node));
}

/* ------------------------------------------------ SHAKE128 and the key's PRF */

/* Keccak-f[1600] (FIPS 202), lanes little-endian. Only the PRF of secret keys uses it:
 * every chain start and every signing attempt's randomness is SHAKE128 of a short
 * input, as in leanSpec's prf.py. */
static const uint64_t KECCAK_ROUND_CONSTANTS[24] = {
    0x0000000000000001ull, 0x0000000000008082ull, 0x800000000000808aull,
    0x8000000080008000ull, 0x000000000000808bull, 0x0000000080000001ull,
    0x8000000080008081ull, 0x8000000000008009ull, 0x000000000000008aull,
    0x0000000000000088ull, 0x0000000080008009ull, 0x000000008000000aull,
    0x000000008000808bull, 0x800000000000008bull, 0x8000000000008089ull,
    0x8000000000008003ull, 0x8000000000008002ull, 0x8000000000000080ull,
    0x000000000000800aull, 0x800000008000000aull, 0x8000000080008081ull,
    0x8000000000008080ull, 0x0000000080000001ull, 0x8000000080008008ull,
};
/* rho's rotation of, and pi's destination for, the lanes visited from lane 1 on */
static const unsigned KECCAK_ROTATIONS[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                                              27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
static const unsigned KECCAK_PI[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                                       15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

static inline uint64_t rotl64(uint64_t x, unsigned n) {
    return (x << n) | (x >> (64 - n));
}

static void keccak_f1600(uint64_t lanes[25]) {
    for (unsigned round = 0; round < 24; round++) {
        uint64_t column[5];
        for (unsigned x = 0; x < 5; x++) { /* theta */
            column[x] = lanes[x] ^ lanes[x + 5] ^ lanes[x + 10] ^ lanes[x + 15] ^ lanes[x + 20];
        }
        for (unsigned x = 0; x < 5; x++) {
            const uint64_t d = column[(x + 4) % 5] ^ rotl64(column[(x + 1) % 5], 1);
            for (unsigned y = 0; y < 25; y += 5) {
                lanes[y + x] ^= d;
            }
        }
        uint64_t carried = lanes[1]; /* rho and pi */
        for (unsigned i = 0; i < 24; i++) {
            const unsigned to = KECCAK_PI[i];
            const uint64_t displaced = lanes[to];
            lanes[to] = rotl64(carried, KECCAK_ROTATIONS[i]);
            carried = displaced;
        }
        for (unsigned y = 0; y < 25; y += 5) { /* chi */
            uint64_t row[5];
            memcpy(row, lanes + y, sizeof(row));
            for (unsigned x = 0; x < 5; x++) {
                lanes[y + x] = row[x] ^ (~row[(x + 1) % 5] & row[(x + 2) % 5]);
            }
        }
        lanes[0] ^= KECCAK_ROUND_CONSTANTS[round]; /* iota */
    }
}

#define SHAKE128_RATE 168

static void xor_into_lanes(uint64_t lanes[25], const uint8_t *bytes, size_t length) {
    for (size_t i = 0; i < length; i++) {
        lanes[i / 8] ^= (uint64_t)bytes[i] << (8 * (i % 8));
    }
}

static void shake128(const uint8_t *input, size_t length, uint8_t *out, size_t out_length) {
    uint64_t lanes[25] = {0};
    while (length >= SHAKE128_RATE) {
        xor_into_lanes(lanes, input, SHAKE128_RATE);
        keccak_f1600(lanes);
        input += SHAKE128_RATE;
        length -= SHAKE128_RATE;
    }
    xor_into_lanes(lanes, input, length);
    lanes[length / 8] ^= (uint64_t)0x1f << (8 * (length % 8)); /* SHAKE's domain and pad */
    lanes[(SHAKE128_RATE - 1) / 8] ^= (uint64_t)0x80 << (8 * ((SHAKE128_RATE - 1) % 8));
    for (;;) {
        keccak_f1600(lanes);
        const size_t take = out_length < SHAKE128_RATE ? out_length : SHAKE128_RATE;
        for (size_t i = 0; i < take; i++) {
            out[i] = (uint8_t)(lanes[i / 8] >> (8 * (i % 8)));
        }
        out += take;
        out_length -= take;
        if (out_length == 0) {
            return;
        }
    }
}

#define PRF_KEY_LEN 32
#define PRF_BYTES_PER_ELEMENT 16
static const uint8_t PRF_DOMAIN[16] = {0xae, 0xae, 0x22, 0xff, 0x00, 0x01, 0xfa, 0xff,
                                       0x21, 0xaf, 0x12, 0x00, 0x01, 0x11, 0xff, 0x00};
#define PRF_TAG_CHAIN_START 0x00u
#define PRF_TAG_RANDOMNESS 0x01u

static size_t put_be(uint8_t *bytes, uint64_t value, size_t width) {
    for (size_t i = 0; i < width; i++) {
        bytes[i] = (uint8_t)(value >> (8 * (width - 1 - i)));
    }
    return width;
}

/* SHAKE128 of `input`, read as `count` big-endian 128-bit integers reduced mod p. */
static void prf_elements(const uint8_t *input, size_t length, uint32_t *out, size_t count) {
    uint8_t bytes[PRF_BYTES_PER_ELEMENT * MAX_WIDTH];
    shake128(input, length, bytes, PRF_BYTES_PER_ELEMENT * count);
    for (size_t i = 0; i < count; i++) {
        unsigned __int128 value = 0;
        for (size_t k = 0; k < PRF_BYTES_PER_ELEMENT; k++) {
            value = value << 8 | bytes[PRF_BYTES_PER_ELEMENT * i + k];
        }
        out[i] = (uint32_t)(value % P);
    }
}

/* The PRF's input opens with domain || tag || key || epoch (4 bytes, big-endian); returns
 * its length. */
static size_t prf_open(uint8_t *input, uint8_t tag, const uint8_t *prf_key, uint64_t epoch) {
    size_t at = 0;
    memcpy(input, PRF_DOMAIN, sizeof(PRF_DOMAIN));
    at += sizeof(PRF_DOMAIN);
    input[at++] = tag;
    memcpy(input + at, prf_key, PRF_KEY_LEN);
    at += PRF_KEY_LEN;
    return at + put_be(input + at, epoch, 4);
}

/* The secret start of chain `chain_index` at `epoch`: ... || chain (8 bytes). */
static void prf_chain_start(const uint8_t *prf_key, uint64_t epoch, uint64_t chain_index,
                            uint32_t *out) {
    uint8_t input[sizeof(PRF_DOMAIN) + 1 + PRF_KEY_LEN + 4 + 8];
    size_t at = prf_open(input, PRF_TAG_CHAIN_START, prf_key, epoch);
    at += put_be(input + at, chain_index, 8);
    prf_elements(input, at, out, HASH_LEN);
}

/* The randomness of signing attempt `counter`: ... || message || counter (8 bytes). */
static void prf_randomness(const uint8_t *prf_key, uint64_t epoch, const uint8_t *message,
                           uint64_t counter, uint32_t *out) {
    uint8_t input[sizeof(PRF_DOMAIN) + 1 + PRF_KEY_LEN + 4 + 32 + 8];
    size_t at = prf_open(input, PRF_TAG_RANDOMNESS, prf_key, epoch);
    memcpy(input + at, message, 32);
    at += 32;
    at += put_be(input + at, counter, 8);
    prf_elements(input, at, out, RAND_LEN);
}

/* ------------------------------------------------------------------- decoding */

static uint32_t read_u32(const uint8_t *bytes) {
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
           (uint32_t)bytes[3] << 24;
}

/* Read `count` field elements; -1 if one is not below p. */
static int read_elements(const uint8_t *bytes, size_t count, uint32_t *out) {
    for (size_t i = 0; i < count; i++) {
        out[i] = read_u32(bytes + 4 * i);
        if (out[i] >= P) {
            return -1;
        }
    }
    return 0;
}

static void write_u32(uint8_t *bytes, uint32_t value) {
    bytes[0] = (uint8_t)value;
    bytes[1] = (uint8_t)(value >> 8);
    bytes[2] = (uint8_t)(value >> 16);
    bytes[3] = (uint8_t)(value >> 24);
}

static void write_elements(uint8_t *bytes, const uint32_t *elements, size_t count) {
    for (size_t i = 0; i < count; i++) {
        write_u32(bytes + 4 * i, elements[i]);
    }
}

static size_t signature_size(const xmss_config *config) {
    /* offsets: path, hashes (top level), siblings (inside the path) */
    return 3 * 4 + RAND_LEN * 4 + (size_t)config->log_lifetime * HASH_LEN * 4 +
           (size_t)config->dimension * HASH_LEN * 4;
}

/* ------------------------------------------------------------------- the API */

LEAN_P2P_EXPORT int lean_xmss_abi_version(void) {
    return LEAN_XMSS_ABI_VERSION;
}

LEAN_P2P_EXPORT int lean_xmss_signature_size(int config) {
    const xmss_config *chosen = config_of(config);
    return chosen == NULL ? LEAN_XMSS_ERR_CONFIG : (int)signature_size(chosen);
}

LEAN_P2P_EXPORT int lean_xmss_poseidon_permute(uint32_t *state, size_t width) {
    const poseidon_params *params = width == 16 ? &POSEIDON_16 : width == 24 ? &POSEIDON_24 : NULL;
    if (params == NULL) {
        return LEAN_XMSS_ERR_WIDTH;
    }
    for (size_t i = 0; i < width; i++) {
        if (state[i] >= P) {
            return LEAN_XMSS_ERR_FIELD_ELEMENT;
        }
    }
    permute(state, params);
    return 0;
}

LEAN_P2P_EXPORT int lean_xmss_verify(int config, const uint8_t *public_key,
                                     size_t public_key_len, uint64_t slot,
                                     const uint8_t *message, const uint8_t *signature,
                                     size_t signature_len) {
    const xmss_config *chosen = config_of(config);
    if (chosen == NULL) {
        return LEAN_XMSS_ERR_CONFIG;
    }
    /* The public key: root (one digest), then the parameter. */
    uint32_t root[HASH_LEN];
    uint32_t parameter[PARAMETER_LEN];
    if (public_key_len != LEAN_XMSS_PUBLIC_KEY_BYTES || read_elements(public_key, HASH_LEN, root) ||
        read_elements(public_key + 4 * HASH_LEN, PARAMETER_LEN, parameter)) {
        return LEAN_XMSS_ERR_PUBLIC_KEY;
    }
    /* The signature: offset(path) rho offset(hashes) | offset(siblings) siblings | hashes.
     * Both lists have one valid length, so the offsets have one valid value each. */
    if (signature_len != signature_size(chosen)) {
        return LEAN_XMSS_ERR_SIGNATURE_SIZE;
    }
    const size_t path_offset = 4 + RAND_LEN * 4 + 4;
    const size_t hashes_offset = path_offset + 4 + (size_t)chosen->log_lifetime * HASH_LEN * 4;
    if (read_u32(signature) != path_offset || read_u32(signature + 4 + RAND_LEN * 4) !=
                                                  hashes_offset ||
        read_u32(signature + path_offset) != 4) {
        return LEAN_XMSS_ERR_SIGNATURE_LAYOUT;
    }
    uint32_t rho[RAND_LEN];
    uint32_t siblings[MAX_LOG_LIFETIME * HASH_LEN];
    uint32_t chain_ends[MAX_DIMENSION * HASH_LEN];
    if (read_elements(signature + 4, RAND_LEN, rho) ||
        read_elements(signature + path_offset + 4, (size_t)chosen->log_lifetime * HASH_LEN,
                      siblings) ||
        read_elements(signature + hashes_offset, (size_t)chosen->dimension * HASH_LEN,
                      chain_ends)) {
        return LEAN_XMSS_ERR_FIELD_ELEMENT;
    }

    if (slot >> chosen->log_lifetime) {
        return LEAN_XMSS_INVALID; /* outside the key's lifetime */
    }
    uint8_t digits[MAX_DIMENSION];
    if (codeword(chosen, parameter, slot, rho, message, digits) != 0) {
        return LEAN_XMSS_INVALID;
    }
    /* Finish each chain from the released hash (after `digit` steps) to its end. */
    for (unsigned chain = 0; chain < chosen->dimension; chain++) {
        hash_chain(parameter, slot, chain, digits[chain], chosen->base - 1 - digits[chain],
                   chain_ends + (size_t)chain * HASH_LEN);
    }
    uint32_t node[HASH_LEN];
    root_of_leaf(chosen, parameter, slot, chain_ends, siblings, node);
    return memcmp(node, root, sizeof(node)) == 0 ? LEAN_XMSS_VALID : LEAN_XMSS_INVALID;
}

/* ------------------------------------------------- key generation and signing */

LEAN_P2P_EXPORT int lean_xmss_shake128(const uint8_t *input, size_t length, uint8_t *out,
                                       size_t out_length) {
    shake128(input, length, out, out_length);
    return 0;
}

/* The configuration and the parameter of a key-side call: 0, or the error to return. */
static int open_key_call(int config, const uint8_t *parameter_bytes, const xmss_config **chosen,
                         uint32_t *parameter) {
    *chosen = config_of(config);
    if (*chosen == NULL) {
        return LEAN_XMSS_ERR_CONFIG;
    }
    if (read_elements(parameter_bytes, PARAMETER_LEN, parameter)) {
        return LEAN_XMSS_ERR_FIELD_ELEMENT;
    }
    return 0;
}

/* The slots [first, first + count) lie inside the lifetime. */
static int slots_in_lifetime(const xmss_config *config, uint64_t first, size_t count) {
    const uint64_t lifetime = (uint64_t)1 << config->log_lifetime;
    return first <= lifetime && count <= lifetime - first;
}

LEAN_P2P_EXPORT int lean_xmss_leaves(int config, const uint8_t *prf_key,
                                     const uint8_t *parameter_bytes, uint64_t first_slot,
                                     size_t count, uint8_t *leaves) {
    const xmss_config *chosen;
    uint32_t parameter[PARAMETER_LEN];
    const int opened = open_key_call(config, parameter_bytes, &chosen, parameter);
    if (opened != 0) {
        return opened;
    }
    if (!slots_in_lifetime(chosen, first_slot, count)) {
        return LEAN_XMSS_ERR_SLOT;
    }
    for (size_t i = 0; i < count; i++) {
        const uint64_t slot = first_slot + i;
        /* Each chain climbs from its secret start all BASE - 1 steps to its public end;
         * the leaf hashes the ends together. */
        uint32_t chain_ends[MAX_DIMENSION * HASH_LEN];
        for (unsigned chain = 0; chain < chosen->dimension; chain++) {
            uint32_t *end = chain_ends + (size_t)chain * HASH_LEN;
            prf_chain_start(prf_key, slot, chain, end);
            hash_chain(parameter, slot, chain, 0, chosen->base - 1, end);
        }
        uint32_t leaf[HASH_LEN];
        leaf_hash(parameter, slot, chosen->dimension, chain_ends, leaf);
        write_elements(leaves + i * HASH_LEN * 4, leaf, HASH_LEN);
    }
    return 0;
}

LEAN_P2P_EXPORT int lean_xmss_tree_layer(int config, const uint8_t *parameter_bytes,
                                         unsigned level, uint64_t parent_start,
                                         const uint8_t *children, size_t pairs,
                                         uint8_t *parents) {
    const xmss_config *chosen;
    uint32_t parameter[PARAMETER_LEN];
    const int opened = open_key_call(config, parameter_bytes, &chosen, parameter);
    if (opened != 0) {
        return opened;
    }
    if (level < 1 || level > chosen->log_lifetime) {
        return LEAN_XMSS_ERR_ARGUMENT;
    }
    const uint64_t width = (uint64_t)1 << (chosen->log_lifetime - level); /* nodes at level */
    if (parent_start > width || pairs > width - parent_start) {
        return LEAN_XMSS_ERR_ARGUMENT;
    }
    for (size_t i = 0; i < pairs; i++) {
        uint32_t left[HASH_LEN];
        uint32_t right[HASH_LEN];
        if (read_elements(children + 2 * i * HASH_LEN * 4, HASH_LEN, left) ||
            read_elements(children + (2 * i + 1) * HASH_LEN * 4, HASH_LEN, right)) {
            return LEAN_XMSS_ERR_FIELD_ELEMENT;
        }
        uint32_t parent[HASH_LEN];
        tree_node(parameter, level, parent_start + i, left, right, parent);
        write_elements(parents + i * HASH_LEN * 4, parent, HASH_LEN);
    }
    return 0;
}

LEAN_P2P_EXPORT int lean_xmss_sign_chains(int config, const uint8_t *prf_key,
                                          const uint8_t *parameter_bytes, uint64_t slot,
                                          const uint8_t *message, uint8_t *rho_bytes,
                                          uint8_t *hashes, uint64_t *attempts) {
    const xmss_config *chosen;
    uint32_t parameter[PARAMETER_LEN];
    const int opened = open_key_call(config, parameter_bytes, &chosen, parameter);
    if (opened != 0) {
        return opened;
    }
    if (!slots_in_lifetime(chosen, slot, 1)) {
        return LEAN_XMSS_ERR_SLOT;
    }
    /* Attempt after attempt, in leanSpec's order, until the codeword meets the target
     * sum: the same key, slot and message always give the same signature. */
    uint32_t rho[RAND_LEN];
    uint8_t digits[MAX_DIMENSION];
    uint64_t attempt = 0;
    for (;; attempt++) {
        if (attempt == LEAN_XMSS_MAX_TRIES) {
            return LEAN_XMSS_ERR_NO_ENCODING;
        }
        prf_randomness(prf_key, slot, message, attempt, rho);
        if (codeword(chosen, parameter, slot, rho, message, digits) == 0) {
            break;
        }
    }
    /* Release each chain after as many steps as its digit says. */
    for (unsigned chain = 0; chain < chosen->dimension; chain++) {
        uint32_t digest[HASH_LEN];
        prf_chain_start(prf_key, slot, chain, digest);
        hash_chain(parameter, slot, chain, 0, digits[chain], digest);
        write_elements(hashes + (size_t)chain * HASH_LEN * 4, digest, HASH_LEN);
    }
    write_elements(rho_bytes, rho, RAND_LEN);
    if (attempts != NULL) {
        *attempts = attempt + 1;
    }
    return 0;
}

/* ------------------------------------------------- one-leaf keys (for tests) */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void draw_elements(uint64_t *state, uint32_t *out, size_t count) {
    for (size_t i = 0; i < count; i++) {
        out[i] = (uint32_t)(splitmix64(state) % P); /* a slight bias is harmless here */
    }
}

#define ONE_LEAF_MAX_TRIES 1000000

LEAN_P2P_EXPORT int lean_xmss_sign_one_leaf(int config, uint64_t seed, uint64_t slot,
                                            const uint8_t *message, uint8_t *public_key,
                                            uint8_t *signature) {
    const xmss_config *chosen = config_of(config);
    if (chosen == NULL) {
        return LEAN_XMSS_ERR_CONFIG;
    }
    if (slot >> chosen->log_lifetime) {
        return LEAN_XMSS_ERR_SLOT;
    }
    uint64_t state = seed;
    uint32_t parameter[PARAMETER_LEN];
    draw_elements(&state, parameter, PARAMETER_LEN);
    uint32_t rho[RAND_LEN];
    uint8_t digits[MAX_DIMENSION];
    int tries = 0;
    do {
        if (++tries > ONE_LEAF_MAX_TRIES) {
            return LEAN_XMSS_ERR_NO_ENCODING;
        }
        draw_elements(&state, rho, RAND_LEN);
    } while (codeword(chosen, parameter, slot, rho, message, digits) != 0);

    /* Chain i starts at a drawn digest; the signature releases it after digits[i] steps,
     * and the leaf hashes its end, after BASE - 1 steps in all. */
    uint32_t released[MAX_DIMENSION * HASH_LEN];
    uint32_t chain_ends[MAX_DIMENSION * HASH_LEN];
    for (unsigned chain = 0; chain < chosen->dimension; chain++) {
        uint32_t *digest = released + (size_t)chain * HASH_LEN;
        draw_elements(&state, digest, HASH_LEN);
        hash_chain(parameter, slot, chain, 0, digits[chain], digest);
        memcpy(chain_ends + (size_t)chain * HASH_LEN, digest, HASH_LEN * sizeof(uint32_t));
        hash_chain(parameter, slot, chain, digits[chain], chosen->base - 1 - digits[chain],
                   chain_ends + (size_t)chain * HASH_LEN);
    }
    uint32_t siblings[MAX_LOG_LIFETIME * HASH_LEN];
    draw_elements(&state, siblings, (size_t)chosen->log_lifetime * HASH_LEN);
    uint32_t node[HASH_LEN];
    root_of_leaf(chosen, parameter, slot, chain_ends, siblings, node);

    write_elements(public_key, node, HASH_LEN);
    write_elements(public_key + 4 * HASH_LEN, parameter, PARAMETER_LEN);
    const size_t path_offset = 4 + RAND_LEN * 4 + 4;
    const size_t hashes_offset = path_offset + 4 + (size_t)chosen->log_lifetime * HASH_LEN * 4;
    write_u32(signature, (uint32_t)path_offset);
    write_elements(signature + 4, rho, RAND_LEN);
    write_u32(signature + 4 + RAND_LEN * 4, (uint32_t)hashes_offset);
    write_u32(signature + path_offset, 4);
    write_elements(signature + path_offset + 4, siblings, (size_t)chosen->log_lifetime * HASH_LEN);
    write_elements(signature + hashes_offset, released, (size_t)chosen->dimension * HASH_LEN);
    return 0;
}
