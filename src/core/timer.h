/* Monotonic wall-clock time, for per-phase timers and throughput. */
#ifndef VAE_TIMER_H
#define VAE_TIMER_H

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double timer_now(void);

#endif
