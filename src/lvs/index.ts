/** Public surface of src/lvs: the driver that keeps IPVS equal to derive(config, health) while the daemon runs. */
export { LvsDriver } from './driver.ts';
export type { LvsDriverDeps, LvsEvent } from './driver.ts';
