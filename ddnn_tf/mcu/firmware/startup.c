/* Start-up of the emulated Cortex-M boards: vector table, .data/.bss set-up, FPU on,
 * newlib's semihosting handles, then main(); its return value is the exit code QEMU
 * reports (semihosting SYS_EXIT). A fault exits with code 99. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void initialise_monitor_handles(void);

/* Linked with -nostartfiles: newlib's exit() still calls these. */
void _init(void) {}
void _fini(void) {}

#define FAULT_EXIT 99

void reset_handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end)
        *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10 and CP11 full access */
    __asm volatile("dsb\n\tisb");
#endif
    initialise_monitor_handles();
    exit(main());
}

static void fault_handler(void)
{
    exit(FAULT_EXIT);
}

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    &__stack_top,  reset_handler, fault_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, 0,             0,             0,             0,             fault_handler,
    fault_handler, 0,             fault_handler, fault_handler,
};
