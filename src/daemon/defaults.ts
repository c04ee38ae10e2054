// The daemon's defaults that `kvmnet serve --help` shows, apart from the daemon itself so that the
// CLI can print them without loading node:http and the API.
export const DEFAULT_PORT = 8470;
export const DEFAULT_REPAIR_INTERVAL_S = 5;
