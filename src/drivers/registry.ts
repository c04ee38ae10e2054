// Maps a network mode to its driver.
import type { NetworkMode } from '../model/network.js';
import type { NetworkDriver } from './driver.js';
import { bridgeDriver } from './bridge.js';
import { isolatedDriver } from './isolated.js';
import { natDriver } from './nat.js';
import { openDriver } from './open.js';
import { routedDriver } from './routed.js';

const DRIVERS: Record<NetworkMode, NetworkDriver> = {
  nat: natDriver,
  isolated: isolatedDriver,
  routed: routedDriver,
  bridge: bridgeDriver,
  open: openDriver,
};

export function driverFor(mode: NetworkMode): NetworkDriver {
  return DRIVERS[mode];
}

export function allDrivers(): NetworkDriver[] {
  return Object.values(DRIVERS);
}
