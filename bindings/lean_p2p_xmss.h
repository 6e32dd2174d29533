/* lean_p2p XMSS: the lean consensus signature scheme in C: verification, key generation
 * and signing.
 *
 * The generalized XMSS scheme of leanSpec (src/lean_spec/spec/crypto/xmss): Poseidon over
 * the KoalaBear field (p = 2^31 - 2^24 + 1) at widths 16 and 24, Winternitz chains whose
 * positions come from a target-sum encoding of the message, and a Merkle tree of one
 * leaf per slot. Two configurations: TEST (2^8 slots, 4 chains) and PROD (2^32 slots,
 * 46 chains), with leanSpec's SSZ encodings of public keys and signatures.
 *
 * Threading: every function is reentrant and keeps no state between calls, so any
 * number of threads may call them at once. Python calls them through ctypes, which
 * releases the GIL for the call: verification runs in parallel on worker threads.
 */
#ifndef LEAN_P2P_XMSS_H
#define LEAN_P2P_XMSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEAN_XMSS_ABI_VERSION 2

#define LEAN_XMSS_MODULUS 0x7f000001u
#define LEAN_XMSS_PUBLIC_KEY_BYTES 52

/* Configurations (leanSpec's TEST_CONFIG and PROD_CONFIG). */
#define LEAN_XMSS_CONFIG_TEST 0
#define LEAN_XMSS_CONFIG_PROD 1

/* Results of lean_xmss_verify. A valid encoding that does not verify is INVALID; an
 * encoding that is not one of a signature or public key of the configuration is
 * MALFORMED, so a caller can tell a forgery from garbage. */
#define LEAN_XMSS_VALID 1
#define LEAN_XMSS_INVALID 0
#define LEAN_XMSS_ERR_CONFIG (-1)          /* not a configuration id */
#define LEAN_XMSS_ERR_PUBLIC_KEY (-2)      /* wrong length, or a word not below p */
#define LEAN_XMSS_ERR_SIGNATURE_SIZE (-3)  /* not the configuration's signature size */
#define LEAN_XMSS_ERR_SIGNATURE_LAYOUT (-4) /* SSZ offsets of another shape */
#define LEAN_XMSS_ERR_FIELD_ELEMENT (-5)   /* a word of the signature not below p */
#define LEAN_XMSS_ERR_WIDTH (-6)           /* a permutation width other than 16 or 24 */
#define LEAN_XMSS_ERR_NO_ENCODING (-7)     /* no randomness met the target sum in time */
#define LEAN_XMSS_ERR_SLOT (-8)            /* a slot past the configuration's lifetime */
#define LEAN_XMSS_ERR_ARGUMENT (-9)        /* a tree level or index outside the tree */

/* Signing gives up after this many attempts at randomness (leanSpec's MAX_TRIES). */
#define LEAN_XMSS_MAX_TRIES 100000u

/* Bytes of a key's PRF secret, a parameter and a digest (field elements little-endian). */
#define LEAN_XMSS_PRF_KEY_BYTES 32
#define LEAN_XMSS_PARAMETER_BYTES 20
#define LEAN_XMSS_DIGEST_BYTES 32
#define LEAN_XMSS_RHO_BYTES 28

/* The SSZ size of a signature in configuration `config`, or LEAN_XMSS_ERR_CONFIG. */
int lean_xmss_signature_size(int config);

/* The Poseidon permutation of leanSpec, in place: `width` is 16 or 24, every element
 * below p. Returns 0, LEAN_XMSS_ERR_WIDTH or LEAN_XMSS_ERR_FIELD_ELEMENT. */
int lean_xmss_poseidon_permute(uint32_t *state, size_t width);

/* Verify `signature` (SSZ) by `public_key` (SSZ, 52 bytes) over the 32-byte `message`
 * at `slot`, as leanSpec's GeneralizedXmssScheme.verify does. */
int lean_xmss_verify(int config, const uint8_t *public_key, size_t public_key_len,
                     uint64_t slot, const uint8_t *message, const uint8_t *signature,
                     size_t signature_len);

/* A signature by a key of which one leaf is known: NOT a signer for real keys. The
 * chain starts and the path siblings are drawn from `seed`, rho is searched (from the
 * seed) until the message's codeword meets the target sum, and the public key's root is
 * computed up that path. Verification accepts the result exactly as it accepts a real
 * signature, which makes it the way to cross-check the verifier's hashing with another
 * implementation in a configuration too large to sign in (PROD), and to time full
 * verifications. Writes LEAN_XMSS_PUBLIC_KEY_BYTES to `public_key` and
 * lean_xmss_signature_size(config) bytes to `signature`. Returns 0,
 * LEAN_XMSS_ERR_CONFIG, LEAN_XMSS_ERR_SLOT or LEAN_XMSS_ERR_NO_ENCODING. */
int lean_xmss_sign_one_leaf(int config, uint64_t seed, uint64_t slot, const uint8_t *message,
                            uint8_t *public_key, uint8_t *signature);

/* ---- Key generation and signing with real keys, byte-exact with leanSpec.
 *
 * A secret key is a 32-byte PRF key, a public parameter, and its Merkle trees; the trees
 * are assembled by the caller from the pieces below (lean_p2p/crypto/keys.py does it as
 * leanSpec's key_gen does), which keeps all memory and all layout decisions out of C.
 * Each function is pure and reentrant, so a caller parallelizes by splitting the work. */

/* SHAKE128 of `input`, `out_length` bytes (the PRF's hash; exported to test it). */
int lean_xmss_shake128(const uint8_t *input, size_t length, uint8_t *out, size_t out_length);

/* The leaves of slots [first_slot, first_slot + count): for each, every chain walked
 * from its PRF-derived start to its end, and the ends hashed into the leaf. Writes
 * count * LEAN_XMSS_DIGEST_BYTES to `leaves`. Returns 0, LEAN_XMSS_ERR_CONFIG,
 * LEAN_XMSS_ERR_FIELD_ELEMENT (parameter) or LEAN_XMSS_ERR_SLOT. */
int lean_xmss_leaves(int config, const uint8_t *prf_key, const uint8_t *parameter,
                     uint64_t first_slot, size_t count, uint8_t *leaves);

/* One layer of a tree: `pairs` parents at `level` (1 = just above the leaves), the first
 * at index `parent_start`, parent i hashing children 2i and 2i + 1 of `children`.
 * Writes pairs * LEAN_XMSS_DIGEST_BYTES to `parents`. Returns 0, LEAN_XMSS_ERR_CONFIG,
 * LEAN_XMSS_ERR_FIELD_ELEMENT or LEAN_XMSS_ERR_ARGUMENT. */
int lean_xmss_tree_layer(int config, const uint8_t *parameter, unsigned level,
                         uint64_t parent_start, const uint8_t *children, size_t pairs,
                         uint8_t *parents);

/* The one-time part of a signature at `slot`: the randomness rho of the first attempt
 * (counting from 0) whose codeword meets the target sum, and each chain released after
 * its digit's steps. Writes LEAN_XMSS_RHO_BYTES to `rho` and dimension *
 * LEAN_XMSS_DIGEST_BYTES to `hashes`, and the attempts made to `attempts` (may be NULL).
 * The caller adds the authentication path from its trees. Returns 0,
 * LEAN_XMSS_ERR_CONFIG, LEAN_XMSS_ERR_FIELD_ELEMENT, LEAN_XMSS_ERR_SLOT or
 * LEAN_XMSS_ERR_NO_ENCODING. */
int lean_xmss_sign_chains(int config, const uint8_t *prf_key, const uint8_t *parameter,
                          uint64_t slot, const uint8_t *message, uint8_t *rho, uint8_t *hashes,
                          uint64_t *attempts);

int lean_xmss_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LEAN_P2P_XMSS_H */
