// libvirt domains: the <interface> element `kvmnet libvirt interface` prints, and the interfaces of
// the domain XML libvirt hands its qemu hook on stdin. Pure: text in, values out.
import { parseXmlSafely, refuseDoctype } from './xml.js';
import { XMLValidator } from 'fast-xml-parser';
import { inputError } from './errors.js';
import { normalizeMac } from './mac.js';

/** One bridge-backed NIC of a running domain, as the live domain XML describes it. */
export interface DomainInterface {
  /** 'bridge' or 'network' (a libvirt network: the live XML names its bridge too). */
  type: string;
  mac: string;
  /** The bridge the tap is plugged into (<source bridge=…>). */
  bridge: string;
  /** The tap libvirt made (<target dev=…>); absent before the domain runs. */
  dev?: string;
  /** <model type=…>, e.g. virtio. */
  model?: string;
}

export interface DomainXml {
  name: string;
  interfaces: DomainInterface[];
}

type Node = Record<string, unknown>;

/** A tap name libvirt makes (vnetN, or <target dev> as the user wrote it): a Linux interface name. */
const TAP_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
const MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

function nodes(parent: Node | undefined, name: string): Node[] {
  const v = parent?.[name];
  return (Array.isArray(v) ? v : []).filter((x): x is Node => typeof x === 'object' && x !== null);
}

function attr(n: Node | undefined, name: string): string | undefined {
  const v = n?.[`@${name}`];
  return typeof v === 'string' ? v : undefined;
}

function text(n: Node | undefined): string {
  if (!n) return '';
  const v = n['#text'];
  return typeof v === 'string' ? v.trim() : '';
}

/**
 * The bridge-backed interfaces of a domain XML (type bridge or network, with a MAC and a source
 * bridge). Other interfaces (user, direct, hostdev, …) are skipped: they have no tap on a bridge.
 */
export function parseDomainXml(xml: string): DomainXml {
  refuseDoctype(xml, 'domain XML', 'libvirt passes the domain XML on standard input, without a DOCTYPE');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw inputError(
      'invalid-xml',
      `domain XML is not well-formed (line ${valid.err.line}, column ${valid.err.col}): ${valid.err.msg}`,
      'libvirt passes the domain XML on standard input',
    );
  }
  const doc = parseXmlSafely(xml, 'domain XML', 'libvirt passes the domain XML on standard input');
  const dom = nodes(doc, 'domain')[0];
  if (!dom) throw inputError('invalid-xml', 'not a libvirt domain XML', 'the root element must be <domain>');
  const interfaces: DomainInterface[] = [];
  for (const devices of nodes(dom, 'devices')) {
    for (const i of nodes(devices, 'interface')) {
      const type = attr(i, 'type') ?? '';
      if (type !== 'bridge' && type !== 'network') continue;
      const mac = normalizeMac(attr(nodes(i, 'mac')[0], 'address') ?? '');
      const bridge = attr(nodes(i, 'source')[0], 'bridge');
      if (!mac || !bridge) continue;
      // The tap's name goes into `ip -batch` lines and the model into listings: anything but a
      // plain interface name / model name is dropped (the interface is then not recorded).
      const rawDev = attr(nodes(i, 'target')[0], 'dev');
      const dev = rawDev !== undefined && TAP_RE.test(rawDev) ? rawDev : undefined;
      const rawModel = attr(nodes(i, 'model')[0], 'type');
      const model = rawModel !== undefined && MODEL_RE.test(rawModel) ? rawModel : undefined;
      interfaces.push({ type, mac, bridge, ...(dev ? { dev } : {}), ...(model ? { model } : {}) });
    }
  }
  return { name: text(nodes(dom, 'name')[0]), interfaces };
}

function xmlAttr(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;');
}

/** The <interface> element for `virsh edit`: a NIC on `bridge` with this MAC and model. */
export function renderInterfaceXml(bridge: string, mac: string, model: string): string {
  return [
    "<interface type='bridge'>",
    `  <mac address='${xmlAttr(mac)}'/>`,
    `  <source bridge='${xmlAttr(bridge)}'/>`,
    `  <model type='${xmlAttr(model)}'/>`,
    '</interface>',
    '',
  ].join('\n');
}

/** The value of virt-install's --network for the same NIC. */
export function virtInstallNetwork(bridge: string, mac: string, model: string): string {
  return `bridge=${bridge},mac=${mac},model=${model}`;
}
