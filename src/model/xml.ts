// The one XML reader configuration kvmnet uses for libvirt documents (network and domain XML):
// every element is an array (so a second <ip> is seen, not overwritten), attributes under "@",
// values kept as text, declarations and processing instructions skipped.
import { XMLParser } from 'fast-xml-parser';

export type XmlNode = Record<string, unknown>;

export const xmlParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  isArray: (_name, _jpath, _leaf, isAttribute) => !isAttribute,
  parseAttributeValue: false,
  parseTagValue: false,
  alwaysCreateTextNode: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
});
