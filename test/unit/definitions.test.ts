// The definitions file (src/model/definitions.ts): parsing with key paths and line numbers, and
// export -> apply round trips.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { refuses as refusesCall, type ExpectedError } from '../lib/refuses.js';
import { parseDefinitions, parseDefinitionsFile, renderDefinitions } from '../../src/model/definitions.js';
import { buildNetwork, type NetworkDef, type NetworkInput } from '../../src/model/network.js';

/** parseDefinitions must refuse text with exactly this code, message and (if given) hint. */
function refuses(text: string, want: ExpectedError): void {
  refusesCall(() => parseDefinitions(text, 'file.yaml'), want);
}

/** Joins lines with "\n" so line numbers in the tests are easy to count. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

describe('parseDefinitions: valid files', () => {
  test('a file with two networks and every field', () => {
    const text = yaml(
      '# my lab',
      'version: 1',
      'networks:',
      '  default:',
      '    mode: nat',
      '    subnet: 192.168.122.0/24',
      '  lab:',
      '    mode: routed',
      '    bridge: virbr7',
      '    mac: 52:54:00:12:34:56',
      '    subnet: 10.10.0.0/24',
      '    gateway: 10.10.0.254',
      '    dhcp: {start: 10.10.0.100, end: 10.10.0.199}',
      '    domain: lab.example',
      '    autostart: true',
    );
    assert.deepEqual(parseDefinitions(text, 'file.yaml'), [
      { name: 'default', mode: 'nat', subnet: '192.168.122.0/24' },
      {
        name: 'lab',
        mode: 'routed',
        bridge: 'virbr7',
        mac: '52:54:00:12:34:56',
        subnet: '10.10.0.0/24',
        gateway: '10.10.0.254',
        dhcp: { start: '10.10.0.100', end: '10.10.0.199' },
        domain: 'lab.example',
        autostart: true,
      },
    ]);
  });

  test('dhcp: false and dhcp: null both mean no DHCP (null)', () => {
    for (const v of ['false', 'null', '~']) {
      const out = parseDefinitions(
        yaml('networks:', '  lab:', '    mode: isolated', '    subnet: 10.0.0.0/24', `    dhcp: ${v}`),
        'f',
      );
      assert.deepEqual(
        out,
        [{ name: 'lab', mode: 'isolated', subnet: '10.0.0.0/24', dhcp: null }],
        `dhcp: ${v}`,
      );
    }
  });

  test('dhcp as a block mapping', () => {
    const out = parseDefinitions(
      yaml(
        'networks:',
        '  lab:',
        '    mode: nat',
        '    subnet: 10.0.0.0/24',
        '    dhcp:',
        '      start: 10.0.0.5',
        '      end: 10.0.0.9',
      ),
      'f',
    );
    assert.deepEqual(out[0]?.dhcp, { start: '10.0.0.5', end: '10.0.0.9' });
  });

  test('an empty file, a file without networks and "networks:" with nothing under it give no networks', () => {
    assert.deepEqual(parseDefinitions('', 'f'), []);
    assert.deepEqual(parseDefinitions('# nothing\n', 'f'), []);
    assert.deepEqual(parseDefinitions('version: 1\n', 'f'), []);
    assert.deepEqual(parseDefinitions('version: 1\nnetworks:\n', 'f'), []);
    assert.deepEqual(parseDefinitions('networks: {}\n', 'f'), []);
  });
});

describe('parseDefinitions: refusals name the key path and line', () => {
  const hintUnknown = 'remove it or check its spelling (see docs/cli.md, "The definitions file")';

  test('unknown key inside a network', () => {
    refuses(
      yaml(
        'version: 1',
        'networks:',
        '  lab:',
        '    mode: nat',
        '    subnett: 10.0.0.0/24',
        '    subnet: 10.0.0.0/24',
      ),
      {
        code: 'invalid-file',
        message: 'file.yaml:5: unknown key "networks.lab.subnett"',
        hint: hintUnknown,
      },
    );
    // Also when the misspelt key comes after a valid one, and with an empty value.
    refuses(
      yaml('version: 1', 'networks:', '  lab:', '    mode: nat', '    subnet: 10.0.0.0/24', '    subnett:'),
      {
        code: 'invalid-file',
        message: 'file.yaml:6: unknown key "networks.lab.subnett"',
      },
    );
  });

  test('unknown key inside a flow mapping', () => {
    refuses(yaml('networks:', '  lab: {mode: nat, subnet: 10.0.0.0/24, colour: red}'), {
      code: 'invalid-file',
      message: 'file.yaml:2: unknown key "networks.lab.colour"',
    });
  });

  test('an unknown key holding a block mapping or list is reported on its own line', () => {
    refuses(yaml('version: 1', 'networkz:', '  lab:', '    mode: nat'), {
      code: 'invalid-file',
      message: 'file.yaml:2: unknown key "networkz"',
    });
    refuses(
      yaml('networks:', '  lab:', '    mode: nat', '    subnet: 10.0.0.0/24', '    extra:', '      - a'),
      {
        code: 'invalid-file',
        message: 'file.yaml:5: unknown key "networks.lab.extra"',
      },
    );
  });

  test('a misspelt required key is named as unknown, not as the missing one', () => {
    refuses(yaml('networks:', '  lab:', '    mode: nat', '    subnett: 10.0.0.0/24'), {
      code: 'invalid-file',
      message: 'file.yaml:4: unknown key "networks.lab.subnett"',
    });
  });

  test('a missing required key says so, on the line of its network', () => {
    refuses(yaml('networks:', '  lab:', '    subnet: 10.0.0.0/24'), {
      code: 'invalid-file',
      message: 'file.yaml:2: missing key "networks.lab.mode"',
    });
  });

  test('an unknown key inside dhcp is reported on its line', () => {
    refuses(
      yaml(
        'networks:',
        '  lab:',
        '    mode: nat',
        '    subnet: 10.0.0.0/24',
        '    dhcp:',
        '      start: 10.0.0.10',
        '      stop: 10.0.0.20',
      ),
      {
        code: 'invalid-file',
        message: 'file.yaml:5: key "networks.lab.dhcp" must be false or a mapping with start and end',
      },
    );
  });

  test('unknown key at top level', () => {
    refuses(yaml('version: 1', 'foo: 3', 'networks: {}'), {
      code: 'invalid-file',
      message: 'file.yaml:2: unknown key "foo"',
      hint: hintUnknown,
    });
  });

  test('wrong type: autostart given as a string', () => {
    refuses(
      yaml(
        'version: 1',
        'networks:',
        '  lab:',
        '    mode: nat',
        '    subnet: 10.0.0.0/24',
        '    autostart: "yes"',
      ),
      {
        code: 'invalid-file',
        message: 'file.yaml:6: key "networks.lab.autostart" must be boolean',
        hint: "fix the value's type",
      },
    );
  });

  test('wrong type: domain given as a number, a network given as a scalar, the file as a list', () => {
    refuses(yaml('networks:', '  lab:', '    mode: nat', '    subnet: 10.0.0.0/24', '    domain: 123'), {
      code: 'invalid-file',
      message: 'file.yaml:5: key "networks.lab.domain" must be string',
    });
    refuses(yaml('networks:', '  lab: 5'), {
      code: 'invalid-file',
      message: 'file.yaml:2: key "networks.lab" must be object',
    });
    refuses(yaml('- a', '- b'), {
      code: 'invalid-file',
      message: 'file.yaml:1: key "(top level)" must be object',
    });
  });

  test('invalid mode value', () => {
    refuses(yaml('version: 1', 'networks:', '  lab:', '    mode: bridged', '    subnet: 10.0.0.0/24'), {
      code: 'invalid-file',
      message:
        'file.yaml:4: key "networks.lab.mode" must be one of "nat", "isolated", "routed", "bridge", "open"',
      hint: 'use one of the listed values',
    });
  });

  test('unsupported file version', () => {
    refuses(yaml('version: 2', 'networks: {}'), {
      code: 'invalid-file',
      message: 'file.yaml:1: key "version" must be one of 1',
    });
  });

  test('dhcp that is neither false nor a start/end mapping', () => {
    refuses(yaml('networks:', '  lab:', '    mode: nat', '    subnet: 10.0.0.0/24', '    dhcp: true'), {
      code: 'invalid-file',
      message: 'file.yaml:5: key "networks.lab.dhcp" must be false or a mapping with start and end',
      hint: 'e.g. dhcp: {start: 10.0.0.100, end: 10.0.0.199}',
    });
  });

  test('YAML syntax errors carry the line number', () => {
    refuses(yaml('version: 1', 'networks:', '  lab:', '    mode: nat', '    subnet: [10.0.0.0/24'), {
      code: 'invalid-yaml',
      message:
        'file.yaml:6: Flow sequence in block collection must be sufficiently indented and end with a ]',
      hint: 'fix the YAML syntax',
    });
    refuses(yaml('networks:', '  lab:', '    mode: nat', '\tsubnet: 10.0.0.0/24'), {
      code: 'invalid-yaml',
      message: 'file.yaml:4: Tabs are not allowed as indentation',
    });
  });

  test('duplicate keys are a YAML error', () => {
    refuses(yaml('networks:', '  lab:', '    mode: nat', '    mode: routed', '    subnet: 10.0.0.0/24'), {
      code: 'invalid-yaml',
      message: 'file.yaml:4: Map keys must be unique',
    });
  });
});

describe('renderDefinitions', () => {
  const defs: NetworkDef[] = [
    buildNetwork(
      {
        name: 'lab',
        mode: 'routed',
        subnet: '10.10.0.0/24',
        bridge: 'virbr7',
        domain: 'lab',
        autostart: true,
      },
      { others: [] },
    ),
    buildNetwork({ name: 'default', subnet: '192.168.122.0/24', bridge: 'virbr0' }, { others: [] }),
    buildNetwork(
      { name: 'quiet', mode: 'isolated', subnet: '10.20.0.0/16', bridge: 'virbr8', dhcp: null },
      { others: [] },
    ),
    buildNetwork(
      {
        name: 'ranged',
        subnet: '172.16.0.0/24',
        bridge: 'br-ranged',
        gateway: '172.16.0.254',
        dhcp: { start: '172.16.0.10', end: '172.16.0.20' },
        mac: '52:54:00:00:00:01',
      },
      { others: [] },
    ),
  ];

  test('writes networks sorted by name with every field', () => {
    const text = renderDefinitions([defs[0] as NetworkDef, defs[1] as NetworkDef]);
    assert.equal(
      text,
      [
        '# kvmnet definitions (kvmnet export); apply with: kvmnet apply -f FILE',
        'version: 1',
        'networks:',
        '  default:',
        '    mode: nat',
        '    bridge: virbr0',
        `    mac: ${defs[1]?.mac}`,
        '    subnet: 192.168.122.0/24',
        '    gateway: 192.168.122.1',
        '    dhcp:',
        '      start: 192.168.122.2',
        '      end: 192.168.122.254',
        '    autostart: false',
        '  lab:',
        '    mode: routed',
        '    bridge: virbr7',
        `    mac: ${defs[0]?.mac}`,
        '    subnet: 10.10.0.0/24',
        '    gateway: 10.10.0.1',
        '    dhcp:',
        '      start: 10.10.0.2',
        '      end: 10.10.0.254',
        '    domain: lab',
        '    autostart: true',
        'forwards: []',
        '',
      ].join('\n'),
    );
  });

  test('render -> parse round-trips to the same inputs, and rebuilding gives the same definitions', () => {
    const back = parseDefinitions(renderDefinitions(defs), 'export.yaml');
    const sorted = [...defs].sort((a, b) => a.name.localeCompare(b.name));
    const asInput = (d: NetworkDef): NetworkInput => ({ ...d });
    assert.deepEqual(back, sorted.map(asInput));
    const rebuilt = back.map((i) => buildNetwork(i, { others: [] }));
    assert.deepEqual(rebuilt, sorted);
  });

  test('names and domains that look like YAML numbers or booleans stay strings', () => {
    for (const name of ['1.0', 'true', 'null', 'yes', 'on', '0x10', '1e3', '007']) {
      const d = buildNetwork(
        { name, subnet: '10.9.0.0/24', bridge: 'virbr9', domain: '123' },
        { others: [] },
      );
      const back = parseDefinitions(renderDefinitions([d]), 'x');
      assert.equal(back.length, 1);
      assert.equal(back[0]?.name, name);
      assert.equal(back[0]?.domain, '123');
    }
  });

  test('no networks', () => {
    assert.deepEqual(parseDefinitions(renderDefinitions([]), 'x'), []);
  });
});

describe('forwards in the definitions file', () => {
  test('render and parse round-trip, ranges and host addresses included', () => {
    const net = buildNetwork({ name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7' }, { others: [] });
    const text = renderDefinitions(
      [net],
      [
        {
          network: 'lab',
          proto: 'tcp',
          port: 8080,
          portEnd: 8080,
          target: 'kvm1',
          targetPort: 80,
          description: 'web',
        },
        {
          network: 'lab',
          proto: 'udp',
          hostIp: '192.168.100.239',
          port: 10000,
          portEnd: 10010,
          target: '10.10.0.60',
          targetPort: 20000,
        },
      ],
    );
    assert.match(
      text,
      /^forwards:\n {2}- network: lab\n {4}proto: tcp\n {4}port: 8080\n {4}to: kvm1:80\n {4}description: web\n/m,
    );
    assert.match(
      text,
      /port: 10000-10010\n {4}to: 10\.10\.0\.60:20000-20010\n {4}hostIp: 192\.168\.100\.239\n/,
    );
    assert.deepEqual(parseDefinitionsFile(text, 'f.yaml').forwards, [
      { network: 'lab', proto: 'tcp', ports: '8080', target: 'kvm1:80', description: 'web' },
      {
        network: 'lab',
        proto: 'udp',
        ports: '10000-10010',
        target: '10.10.0.60:20000-20010',
        hostIp: '192.168.100.239',
      },
    ]);
  });

  test('a bad protocol or an unknown key in a forward names its path and line', () => {
    refuses(yaml('forwards:', '  - network: lab', '    proto: sctp', '    port: 1', '    to: a:1'), {
      code: 'invalid-file',
      message: 'file.yaml:3: key "forwards.0.proto" must be one of "tcp", "udp"',
    });
    refuses(
      yaml('forwards:', '  - network: lab', '    proto: tcp', '    port: 1', '    to: a:1', '    via: x'),
      {
        code: 'invalid-file',
        message: 'file.yaml:6: unknown key "forwards.0.via"',
      },
    );
  });
});
