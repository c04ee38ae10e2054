// The host network systems `kvmnet net persist` writes for (apart from persist.ts: no YAML library).
export const PERSIST_FORMATS = ['ifcfg', 'networkd', 'nm', 'ifupdown', 'netplan'] as const;
export type PersistFormat = (typeof PERSIST_FORMATS)[number];
