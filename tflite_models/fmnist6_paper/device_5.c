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
    38, 105, 190, 114, 160
};
static const int16_t conv1_t[4] = {
    -194, 237, 443, 76
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
    55, 63, 152, 231, 39, 252, 139, 115, 47, 208, 171, 86, 124, 160, 178, 79,
    146, 0, 143, 16, 225, 136, 243, 57, 148, 139, 117, 78, 40, 242, 99, 64,
    139, 119, 5, 64, 41, 220, 125, 146, 29, 255, 204, 162, 205, 247, 88, 141,
    247, 89, 128, 197, 251, 80, 121, 180, 113, 45, 71, 248, 22, 115, 111, 192,
    15, 84, 37, 201, 181, 171, 154, 160, 100, 230, 237, 133, 103, 27, 136, 176,
    254, 29, 138, 203, 183, 245, 77, 215, 247, 64, 136, 136, 20, 25, 195, 136,
    5, 201, 168, 129, 122, 128, 40, 107, 128, 108, 160, 96, 213, 43, 82, 210,
    240, 253, 167, 71, 39, 248, 195, 19, 127, 156, 31, 140, 155, 64, 214, 59,
    215, 120, 154, 136, 133, 142, 32, 136, 74, 8, 40, 163, 170, 74, 0, 64,
    159, 0, 24, 113, 162, 56, 83, 70, 64, 0, 210, 50, 34, 255, 254, 34,
    197, 48, 6, 253, 52, 245, 255, 134, 51, 253, 138, 102, 127, 152, 58, 41,
    144, 102, 74, 160
};
static const float head_scale[10] = {
    0.0291316472f, 0.0955156162f, 0.108170591f, 0.0793940425f, 0.041544985f, 0.0331972018f,
    0.0927371681f, 0.0369692855f, 0.0886505991f, 0.105988048f
};
static const float head_bias[10] = {
    -0.769656777f, -0.709437191f, 0.03088063f, -0.373000741f, -0.538129807f, -0.479912102f,
    -0.343999863f, -0.916696429f, 0.208058238f, 0.482596695f
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

int ddnn_device_5(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
