/* device_5: generated C99 for a DDNN end device; see device_5.h. */
#include <stdint.h>

#include "device_5.h"

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
    138, 41, 119, 210, 160
};
static const int16_t conv1_t[4] = {
    -32, 16, 431, 30
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
    38, 190, 128, 103, 39, 124, 131, 115, 47, 212, 167, 46, 125, 176, 34, 47,
    152, 16, 167, 216, 162, 10, 255, 28, 136, 47, 122, 76, 35, 243, 41, 0,
    255, 159, 100, 0, 9, 254, 121, 34, 29, 251, 92, 34, 253, 121, 92, 192,
    183, 221, 140, 134, 187, 80, 127, 117, 240, 74, 103, 248, 130, 119, 127, 128,
    143, 255, 20, 74, 181, 179, 129, 160, 224, 135, 237, 5, 39, 27, 136, 242,
    246, 85, 7, 205, 63, 240, 237, 215, 215, 0, 221, 136, 23, 253, 201, 134,
    47, 221, 140, 27, 56, 128, 153, 73, 0, 108, 132, 64, 20, 199, 217, 0,
    176, 125, 243, 67, 213, 127, 67, 21, 127, 159, 220, 221, 125, 64, 216, 24,
    151, 236, 136, 128, 5, 204, 136, 192, 88, 136, 164, 35, 168, 72, 0, 192,
    170, 8, 3, 245, 163, 84, 83, 2, 80, 173, 242, 50, 40, 187, 254, 0,
    193, 0, 39, 114, 48, 255, 183, 54, 47, 252, 140, 166, 186, 152, 232, 11,
    8, 10, 138, 160
};
static const float head_scale[10] = {
    0.0261732545f, 0.0292194486f, 0.106134504f, 0.032551337f, 0.038695965f, 0.0293668695f,
    0.0459829122f, 0.0221937913f, 0.0739529878f, 0.0388808809f
};
static const float head_bias[10] = {
    -0.70953083f, -0.627081633f, -0.734535515f, -0.652819932f, -0.380824387f, -0.169943005f,
    0.00626069307f, -0.506243467f, -0.665467024f, -0.932493746f
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

int ddnn_device_5(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
