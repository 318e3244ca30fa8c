// The TAI clock lives with the agent (agent/clock.ts), which compares slot
// stamps with it; tests use the same reading.
export { taiNowNs } from '../../agent/clock.ts';
