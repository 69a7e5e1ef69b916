/* Firmware main of one device tier on an emulated board: reads sensor messages from the
 * host file "sensor.bin" over semihosting, runs the tier on each, writes its summary and
 * features to "messages.bin", and prints the deepest stack the tier's entry point used
 * (the stack below the call is painted before every call and scanned after it).
 * Built with -DTIER_ENTRY=ddnn_device_N -DSENSOR_BYTES=.. -DSUMMARY_BYTES=.. -DFEATURES_BYTES=.. */
#include <stdint.h>
#include <stdio.h>

int TIER_ENTRY(const uint8_t *sensor, uint8_t *summary, uint8_t *features);

#define PAINT_WORDS 2048u
#define PAINT 0xA5C3A5C3u
#define MESSAGE_BYTES (SUMMARY_BYTES + FEATURES_BYTES)

static uint8_t sensor[SENSOR_BYTES];
static uint8_t message[MESSAGE_BYTES + 1];

/* Paint below the stack pointer, call the tier, return how deep it wrote. */
__attribute__((noinline)) static uint32_t call_measured(int *rc)
{
    uint32_t sp, i;
    volatile uint32_t *bottom;
    __asm volatile("mov %0, sp" : "=r"(sp));
    bottom = (volatile uint32_t *)(sp - 4u * PAINT_WORDS);
    for (i = 0; i < PAINT_WORDS; i++)
        bottom[i] = PAINT;
    *rc = TIER_ENTRY(sensor, SUMMARY_BYTES ? message : (uint8_t *)0, message + SUMMARY_BYTES);
    for (i = 0; i < PAINT_WORDS && bottom[i] == PAINT; i++)
        ;
    return 4u * (PAINT_WORDS - i);
}

int main(void)
{
    FILE *in = fopen("sensor.bin", "rb");
    FILE *out = fopen("messages.bin", "wb");
    unsigned long samples = 0;
    uint32_t deepest = 0;
    if (!in || !out) {
        printf("error: cannot open sensor.bin or messages.bin\n");
        return 2;
    }
    while (fread(sensor, 1, SENSOR_BYTES, in) == SENSOR_BYTES) {
        int rc;
        uint32_t used = call_measured(&rc);
        if (rc != 0) {
            printf("error: the tier returned %d at sample %lu\n", rc, samples);
            return 3;
        }
        if (used > deepest)
            deepest = used;
        if (fwrite(message, 1, MESSAGE_BYTES, out) != MESSAGE_BYTES) {
            printf("error: writing messages.bin failed\n");
            return 4;
        }
        samples++;
    }
    fclose(in);
    fclose(out);
    printf("samples %lu stack_bytes %lu\n", samples, (unsigned long)deepest);
    return 0;
}
