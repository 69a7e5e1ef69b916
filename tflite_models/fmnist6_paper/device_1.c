/* device_1: generated C99 for a DDNN end device; see device_1.h. */
#include <stdint.h>

#include "device_1.h"

static unsigned get_bit(const uint8_t *p, unsigned i)
{
    return (p[i >> 3] >> (7u - (i & 7u))) & 1u;
}

static void set_bit(uint8_t *p, unsigned i)
{
    p[i >> 3] = (uint8_t)(p[i >> 3] | (0x80u >> (i & 7u)));
}

static void clear_bytes(uint8_t *p, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++)
        p[i] = 0;
}

/* conv1: 3x3 binary convolution (real input 10x14x1, 4 filters),
 * 3x3/2 max-pool -> 5x7x4, batch norm, sign. s = the sum of the +-weighted inputs, zero border;
 * integer thresholds. The conv rows a pooled row
 * needs are kept in a ring of 3 rows; each input row is read once into a padded row. */
static const uint8_t conv1_w[5] = {
    218, 61, 244, 17, 192
};
static const int16_t conv1_t[4] = {
    231, 403, -95, 35
};
static const uint8_t conv1_up[4] = {
    1, 1, 1, 1
};

static void conv1(const uint8_t *in, uint8_t *out)
{
    int16_t ring[3][14];
    int16_t pad[16];
    uint8_t wb[9];
    unsigned fo, k, ci;
    int oy, ox, kx, x;
    clear_bytes(out, 18u);
    for (fo = 0; fo < 4u; fo++) {
        int next = 0;
        for (k = 0; k < 9u; k++)
            wb[k] = (uint8_t)get_bit(conv1_w, fo * 9u + k);
        for (oy = 0; oy < 5; oy++) {
            int y0 = oy * 2 - 0, y1 = y0 + 2;
            if (y0 < 0)
                y0 = 0;
            if (y1 > 9)
                y1 = 9;
            for (; next <= y1; next++) { /* conv row `next`: taps outer, x inner */
                int16_t *r = ring[next % 3];
                int ky;
                for (x = 0; x < 14; x++)
                    r[x] = 0;
                k = 0;
                for (ky = 0; ky < 3; ky++) {
                    int iy = next + ky - 1;
                    if (iy < 0 || iy >= 10) {
                        k += 3u; /* a zero border row adds nothing */
                        continue;
                    }
                    for (ci = 0; ci < 1u; ci++) {
                        pad[ci] = 0;
                        pad[15u + ci] = 0;
                        for (x = 0; x < 14; x++)
                            pad[(unsigned)(x + 1) * 1u + ci] = (int16_t)in[((unsigned)iy * 14u + (unsigned)x) * 1u + ci];
                    }
                    for (kx = 0; kx < 3; kx++) {
                        for (ci = 0; ci < 1u; ci++, k++) {
                            const int16_t *p = pad + (unsigned)kx * 1u + ci;
                            if (wb[k]) {
                                for (x = 0; x < 14; x++)
                                    r[x] = (int16_t)(r[x] + p[x * 1u]);
                            } else {
                                for (x = 0; x < 14; x++)
                                    r[x] = (int16_t)(r[x] - p[x * 1u]);
                            }
                        }
                    }
                }
            }
            for (ox = 0; ox < 7; ox++) {
                int x0 = ox * 2 - 0, x1 = x0 + 2, y;
                int16_t best = -32768;
                if (x0 < 0)
                    x0 = 0;
                if (x1 > 13)
                    x1 = 13;
                for (y = y0; y <= y1; y++) {
                    const int16_t *row = ring[y % 3];
                    for (x = x0; x <= x1; x++)
                        if (row[x] > best)
                            best = row[x];
                }
                if (conv1_up[fo] ? best >= conv1_t[fo] : best <= conv1_t[fo])
                    set_bit(out, ((unsigned)oy * 7u + (unsigned)ox) * 4u + fo);
            }
        }
    }
}

/* head: binary dense 140 -> 10 classes, batch norm folded, float32 summary; float32 in the binary's order. */
static const uint8_t head_w[180] = {
    21, 77, 242, 61, 205, 209, 178, 253, 52, 33, 100, 169, 224, 89, 166, 55,
    32, 16, 196, 204, 19, 12, 220, 24, 119, 215, 186, 26, 45, 71, 40, 115,
    159, 50, 32, 32, 237, 243, 34, 8, 209, 215, 35, 27, 133, 242, 9, 64,
    197, 162, 101, 143, 250, 96, 63, 61, 190, 197, 121, 242, 130, 86, 191, 178,
    68, 251, 98, 106, 207, 32, 4, 80, 219, 34, 225, 173, 23, 8, 134, 248,
    7, 15, 47, 69, 242, 144, 144, 109, 164, 192, 46, 162, 35, 248, 82, 109,
    213, 50, 111, 253, 127, 127, 255, 242, 22, 55, 48, 48, 183, 51, 210, 149,
    150, 223, 1, 189, 21, 241, 91, 0, 159, 16, 246, 95, 161, 224, 42, 102,
    84, 24, 0, 12, 204, 134, 113, 0, 2, 223, 242, 34, 61, 221, 81, 80,
    183, 34, 32, 43, 118, 98, 34, 47, 219, 37, 193, 171, 15, 10, 0, 246,
    121, 64, 132, 4, 221, 40, 18, 2, 34, 239, 122, 34, 87, 159, 198, 255,
    109, 204, 223, 240
};
static const float head_scale[10] = {
    0.0438982807f, 0.0400266685f, 0.0384543091f, 0.117009997f, 0.143367454f, 0.107282639f,
    0.092836991f, 0.0950909555f, 0.0412795655f, 0.0914420336f
};
static const float head_bias[10] = {
    -0.787290633f, -1.06779921f, -1.35741138f, -0.222004578f, -1.229707f, -0.825296164f,
    0.344420344f, -0.480148196f, -1.30704713f, -0.897404194f
};

static void head(const uint8_t *in, uint8_t *summary)
{
    unsigned j;
    for (j = 0; j < 10u; j++) {
        float acc = head_bias[j]; /* the binary's sum: bias first, then inputs in order */
        const float term[2] = {-head_scale[j], head_scale[j]}; /* disagree, agree */
        const uint8_t *w = head_w + j * 18u;
        unsigned b, i = 0;
        for (b = 0; b < 18u; b++) {
            unsigned agree = ~(unsigned)(in[b] ^ w[b]);
            int bit;
            for (bit = 7; bit >= 0 && i < 140u; bit--, i++)
                acc += term[(agree >> bit) & 1u];
        }
        union { float f; uint32_t u; } bits; /* little-endian float32 on the wire */
        uint32_t u;
        bits.f = acc;
        u = bits.u;
        summary[4 * j] = (uint8_t)u;
        summary[4 * j + 1] = (uint8_t)(u >> 8);
        summary[4 * j + 2] = (uint8_t)(u >> 16);
        summary[4 * j + 3] = (uint8_t)(u >> 24);
    }
}

int ddnn_device_1(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
