// Hostile input (issue 8 point 7): the properties the fast-check tests check, the payloads the
// injection tests feed to every name that reaches a shell, a file path, an `ip` command line or a
// dnsmasq/nft config, and those fields.

/** Properties of test/unit/property.test.ts (runs per property: KVMNET_FC_RUNS, default in the test). */
export const MODEL_PROPERTY_CASES = [
  'YAML definitions: any text parses or is refused with a one-line KvmnetError',
  'YAML definitions: schema-shaped files with hostile values parse or are refused, and what parses builds or is refused',
  'YAML definitions: valid networks and forwards survive export -> parse -> build unchanged',
  'network XML: any text imports or is refused with a one-line KvmnetError',
  'network XML: libvirt-shaped documents with hostile names and attributes import or are refused',
  'network XML: valid networks survive dumpxml -> import -> build unchanged',
  'domain XML: any <interface> list parses or is refused, and every tap name kept is a plain interface name',
  'IPv4 and CIDR: parsers never throw, valid values round-trip, parseSubnet refuses with KvmnetError only',
  'MAC: normalizeMac never throws and round-trips, buildNetwork refuses bad MACs with KvmnetError only',
  'port ranges and forward targets: parsePortRange round-trips valid ranges, buildForward refuses with KvmnetError only',
  'network inputs: buildNetwork accepts or refuses with KvmnetError, and a dnsmasq config of what it accepts has only known keys',
  'port inputs: buildPort accepts or refuses with KvmnetError, and the VM name it keeps is a DNS label',
] as const;

/** Properties of test/unit/api-property.test.ts, against the real HTTP server on a fake host. */
export const API_PROPERTY_CASES = [
  'request bodies shaped like each route schema: 2xx or 4xx with a one-line JSON error, never 5xx',
  'arbitrary bodies, content types and raw non-JSON text: 4xx with a one-line JSON error, never 5xx',
  'hostile path segments and query strings: 2xx or 4xx, never 5xx, nothing served outside the web root',
  'a refused write changes nothing: no host command run, the state directory byte for byte the same',
] as const;

export interface Payload {
  name: string;
  value: string;
}

/** What an attacker types into a name. */
export const INJECTION_PAYLOAD_CASES: Payload[] = [
  { name: 'newline then a command', value: 'x\nid' },
  { name: 'carriage return', value: 'x\rid' },
  { name: 'semicolon', value: 'x;id' },
  { name: 'command substitution', value: '$(id)' },
  { name: 'backticks', value: '`id`' },
  { name: 'single quote', value: "x'y" },
  { name: 'double quote', value: 'x"y' },
  { name: 'path traversal', value: '../../etc/x' },
  { name: 'dot dot', value: '..' },
  { name: 'NUL byte', value: 'x\0y' },
  { name: 'double dash', value: '--' },
  { name: 'option-looking -x', value: '-x' },
  { name: 'option-looking --help', value: '--help' },
  { name: 'overlong (300 characters)', value: 'a'.repeat(300) },
  { name: 'unicode letters', value: '\u00e9t\u00e9' },
  { name: 'unicode right-to-left override', value: 'x\u202ey' },
  { name: 'comment #', value: 'x #y' },
  { name: 'nft closing brace', value: 'x } ; flush ruleset' },
  { name: 'dnsmasq extra line', value: 'x\n dhcp-script=/tmp/evil' },
  { name: 'dnsmasq comma', value: 'x,dhcp-script=/tmp/evil' },
  { name: 'space', value: 'x y' },
  { name: 'slash', value: 'x/y' },
  { name: 'empty', value: '' },
];

/**
 * Names a user may legally give that look like trouble: accepted, rendered safely (the unit test)
 * and started and stopped cleanly (test/integration/injection.test.ts).
 */
export const TRICKY_NAME_CASES = [
  { field: 'bridge', value: 'help' },
  { field: 'bridge', value: 'dev' },
  { field: 'network', value: 'toString' },
  { field: 'network', value: 'constructor' },
  { field: 'network', value: 'help' },
  { field: 'vm', value: 'help' },
] as const;

/** Every field whose text reaches a shell, a file path, an `ip` line or a dnsmasq/nft config. */
export const INJECTION_FIELD_CASES = [
  { field: 'network', where: 'state file keys, applied/<name>.json, run/net/<name>/, nft chain names' },
  { field: 'bridge', where: 'ip -batch lines, dnsmasq interface=, nft iifname' },
  { field: 'uplink', where: 'ip -batch lines, /sys/class/net/<uplink>, ping -I' },
  { field: 'forwardDev', where: 'nft oifname/iifname' },
  { field: 'domain', where: 'dnsmasq domain= and local=' },
  { field: 'vm', where: 'dnsmasq hosts files, port ids' },
  { field: 'port model', where: 'QEMU -device argument printed for the user' },
  { field: 'forward description', where: 'free text: the state file and `forward list`' },
  { field: 'forward target', where: 'nft map element (VM name or address)' },
  { field: 'dhcpHosts name', where: 'dnsmasq dhcp-hostsfile' },
  { field: 'dns hosts hostname', where: 'dnsmasq addn-hosts' },
  { field: 'dns srv service/target', where: 'dnsmasq srv-host=' },
  { field: 'dns txt name', where: 'dnsmasq txt-record=' },
  { field: 'dns txt value', where: 'free text: dnsmasq txt-record=' },
  { field: 'dns forwarder domain', where: 'dnsmasq server=/domain/' },
  { field: 'domain XML target dev', where: 'ip -batch lines (libvirt hook)' },
  { field: 'libvirt XML name', where: 'as network, through net define FILE.xml' },
] as const;

/** The CLI commands test/integration/injection.test.ts feeds each payload to (payload as $P). */
export const CLI_INJECTION_CASES = [
  { name: 'net define NAME', args: ['net', 'define', '$P', '--subnet', '10.77.0.0/24'] },
  {
    name: 'net define --bridge',
    args: ['net', 'define', 'inj', '--subnet', '10.77.0.0/24', '--bridge', '$P'],
  },
  {
    name: 'net define --domain',
    args: ['net', 'define', 'inj', '--subnet', '10.77.0.0/24', '--domain', '$P'],
  },
  {
    name: 'net define --uplink',
    args: ['net', 'define', 'inj', '--mode', 'bridge', '--uplink', '$P', '--bridge', 'brinj'],
  },
  { name: 'port add --vm', args: ['port', 'add', 'lab', '--vm', '$P'] },
  { name: 'port add --model', args: ['port', 'add', 'lab', '--vm', 'injvm', '--model', '$P'] },
  { name: 'forward add TARGET', args: ['forward', 'add', 'lab', 'tcp', '18080', '$P:80'] },
  {
    name: 'forward add --description',
    args: ['forward', 'add', 'lab', 'tcp', '18080', 'tricky:80', '--description', '$P'],
  },
  { name: 'net start NAME', args: ['net', 'start', '$P'] },
] as const;
