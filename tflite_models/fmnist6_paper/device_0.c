/* device_0: generated C99 for a DDNN end device; see device_0.h. */
#include <stdint.h>

#include "device_0.h"

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
    158, 7, 169, 76, 176
};
static const int16_t conv1_t[4] = {
    108, 97, 109, 376
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
    1, 244, 236, 6, 254, 234, 172, 238, 192, 22, 239, 236, 255, 214, 242, 46,
    230, 96, 36, 60, 7, 48, 71, 196, 58, 118, 252, 22, 124, 135, 198, 75,
    250, 245, 30, 0, 0, 87, 252, 240, 222, 233, 143, 19, 94, 136, 192, 59,
    140, 203, 27, 140, 92, 64, 133, 87, 143, 74, 109, 35, 252, 44, 76, 121,
    246, 6, 167, 31, 80, 4, 189, 160, 125, 128, 63, 241, 192, 86, 117, 24,
    127, 247, 211, 23, 228, 155, 10, 255, 8, 160, 81, 136, 6, 11, 96, 67,
    0, 220, 68, 0, 69, 227, 132, 215, 239, 14, 69, 0, 15, 128, 7, 242,
    199, 204, 243, 40, 127, 195, 177, 151, 8, 84, 70, 239, 210, 128, 98, 226,
    66, 6, 64, 1, 64, 240, 21, 105, 47, 196, 6, 89, 124, 106, 208, 64,
    68, 1, 2, 127, 129, 0, 126, 253, 80, 78, 175, 223, 127, 236, 255, 222,
    252, 64, 98, 144, 1, 91, 16, 0, 23, 170, 219, 75, 125, 141, 84, 55,
    173, 100, 11, 240
};
static const float head_scale[10] = {
    0.0927850381f, 0.0302699152f, 0.0755250603f, 0.0433871448f, 0.111587666f, 0.0222822633f,
    0.125017866f, 0.026323678f, 0.127717614f, 0.0599026419f
};
static const float head_bias[10] = {
    1.37769628f, -0.599982381f, -1.12767589f, -0.931677461f, -0.314350009f, -0.566596448f,
    -0.763353884f, -0.526056468f, 2.77066946f, -0.320864618f
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

int ddnn_device_0(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
