/* Instruction-counting main of one device tier on an emulated board (run under QEMU with
 * -singlestep -d exec,nochain, one trace line per executed instruction). It reads
 * "sensor.bin" (two uint32: passes P and samples N, then N sensor messages), runs the tier
 * over the N samples P times and writes the last pass's messages to "messages.bin". Two
 * runs with P = 1 and P = 2 differ by exactly one pass over the N samples: the harness's
 * own start-up, file I/O and exit cancel out, and the loop in passes() is left out of the
 * count by its symbol. No stack painting, no per-sample I/O.
 * Built with -DTIER_ENTRY=ddnn_device_N -DSENSOR_BYTES=.. -DSUMMARY_BYTES=.. -DFEATURES_BYTES=..
 * and -DMAX_SAMPLES=.. */
#include <stdint.h>
#include <stdio.h>

int TIER_ENTRY(const uint8_t *sensor, uint8_t *summary, uint8_t *features);

#define MESSAGE_BYTES (SUMMARY_BYTES + FEATURES_BYTES)

static uint8_t sensors[MAX_SAMPLES * SENSOR_BYTES];
static uint8_t messages[MAX_SAMPLES * MESSAGE_BYTES + 1];

__attribute__((noinline)) static int passes(uint32_t repeat, uint32_t n)
{
    uint32_t r, i;
    int rc = 0;
    for (r = 0; r < repeat; r++)
        for (i = 0; i < n; i++)
            rc |= TIER_ENTRY(sensors + i * SENSOR_BYTES,
                             SUMMARY_BYTES ? messages + i * MESSAGE_BYTES : (uint8_t *)0,
                             messages + i * MESSAGE_BYTES + SUMMARY_BYTES);
    return rc;
}

int main(void)
{
    FILE *in = fopen("sensor.bin", "rb");
    FILE *out = fopen("messages.bin", "wb");
    uint32_t head[2];
    if (!in || !out || fread(head, 4, 2, in) != 2 || head[1] > MAX_SAMPLES) {
        printf("error: cannot read sensor.bin\n");
        return 2;
    }
    if (fread(sensors, SENSOR_BYTES, head[1], in) != head[1]) {
        printf("error: sensor.bin is short\n");
        return 2;
    }
    if (passes(head[0], head[1]) != 0) {
        printf("error: the tier returned an error\n");
        return 3;
    }
    fwrite(messages, MESSAGE_BYTES, head[1], out);
    fclose(in);
    fclose(out);
    printf("samples %lu passes %lu\n", (unsigned long)head[1], (unsigned long)head[0]);
    return 0;
}
