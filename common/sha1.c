/* sha1.c - SHA-1 as specified in FIPS 180-4 (sections 4.1.1, 5.1.1, 6.1), one shot.
 *
 * Used for library versions (content hashes) and script SHAs. No streaming, no
 * allocation; declared in common/common.h.
 */

#include "common.h"

#include <stdint.h>
#include <string.h>

static uint32_t rol(uint32_t x, int k)
{
    return (x << k) | (x >> (32 - k));
}

static uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(unsigned char *p, uint32_t x)
{
    p[0] = (unsigned char)(x >> 24);
    p[1] = (unsigned char)(x >> 16);
    p[2] = (unsigned char)(x >> 8);
    p[3] = (unsigned char)x;
}

/* Processes one 64-byte block into the hash state h[0..4] (FIPS 180-4 6.1.2). */
static void compress(uint32_t h[5], const unsigned char *block)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d); /* Ch */
            k = 0x5a827999;
        } else if (t < 40) {
            f = b ^ c ^ d; /* Parity */
            k = 0x6ed9eba1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d); /* Maj */
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void cm_sha1(const void *p, size_t n, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    const unsigned char *s = p;
    size_t left = n;
    for (; left >= 64; left -= 64, s += 64)
        compress(h, s);

    /* Padding (5.1.1): the tail, a 1 bit, zeros, then the bit length as 64 bits
     * big-endian, filling one or two final blocks. */
    unsigned char last[128];
    memset(last, 0, sizeof(last));
    if (left > 0)
        memcpy(last, s, left);
    last[left] = 0x80;
    size_t tail = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        last[tail - 1 - i] = (unsigned char)(bits >> (8 * i));
    compress(h, last);
    if (tail == 128)
        compress(h, last + 64);

    for (int i = 0; i < 5; i++)
        store_be32(out + 4 * i, h[i]);
}

void cm_sha1_hex(const void *p, size_t n, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[20];
    cm_sha1(p, n, d);
    for (int i = 0; i < 20; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[40] = '\0';
}
