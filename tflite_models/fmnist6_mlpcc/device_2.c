/* device_2: generated C99 for a DDNN end device; see device_2.h. */
#include <stdint.h>

#include "device_2.h"

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
    47, 166, 112, 169, 16
};
static const int16_t conv1_t[4] = {
    381, 69, 12, -98
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

/* head: binary dense 140 -> 10 classes, batch norm folded, int4 summary; float32 in the binary's order. */
static const uint8_t head_w[180] = {
    16, 162, 127, 48, 75, 47, 215, 12, 195, 253, 48, 233, 253, 33, 30, 243,
    204, 208, 79, 204, 16, 192, 227, 81, 52, 3, 57, 59, 82, 179, 213, 181,
    128, 15, 130, 96, 255, 204, 130, 247, 2, 133, 174, 71, 13, 72, 121, 64,
    181, 33, 213, 67, 251, 0, 254, 236, 38, 29, 237, 130, 247, 79, 83, 119,
    251, 221, 139, 156, 191, 95, 252, 144, 124, 4, 138, 226, 145, 16, 124, 251,
    1, 90, 171, 2, 21, 176, 196, 33, 191, 32, 254, 242, 238, 38, 0, 6,
    72, 241, 19, 60, 206, 48, 53, 72, 225, 33, 140, 208, 252, 170, 250, 63,
    162, 253, 163, 215, 108, 130, 164, 55, 84, 63, 19, 121, 210, 240, 126, 170,
    64, 65, 216, 234, 5, 12, 175, 116, 17, 140, 119, 82, 8, 247, 184, 16,
    149, 194, 255, 131, 28, 63, 118, 240, 39, 252, 205, 18, 102, 12, 1, 47,
    244, 144, 252, 239, 204, 76, 108, 206, 193, 223, 226, 211, 80, 239, 135, 49,
    153, 213, 247, 96
};
static const float head_scale[10] = {
    0.076678887f, 0.0724594519f, 0.0805751383f, 0.0681450218f, 0.0700504705f, 0.0790714324f,
    0.0837305561f, 0.0647459179f, 0.0633265823f, 0.0741510317f
};
static const float head_bias[10] = {
    -0.377544999f, 0.302003443f, -8.09505582e-06f, 0.243121505f, 0.114788547f, 0.336582899f,
    0.128431305f, 0.125697553f, -0.518230319f, 0.889755666f
};

static void head(const uint8_t *in, uint8_t *summary)
{
    unsigned j;
    clear_bytes(summary, 5u);
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
        float t = acc + 0.5f; /* the binary's floor(acc + 0.5) clipped to [-8, 7] */
        int q;
        if (t >= 7.0f) {
            q = 7;
        } else if (t < -7.0f) {
            q = -8;
        } else {
            int32_t i0 = (int32_t)t;
            q = (int)(i0 - (t < (float)i0));
        }
        summary[j >> 1] = (uint8_t)(summary[j >> 1] | (((unsigned)q & 0xFu) << ((j & 1u) * 4u)));
    }
}

int ddnn_device_2(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
