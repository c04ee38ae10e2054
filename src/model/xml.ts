// The one XML reader configuration kvmnet uses for libvirt documents (network and domain XML):
// every element is an array (so a second <ip> is seen, not overwritten), attributes under "@",
// values kept as text, declarations and processing instructions skipped.
import { XMLParser } from 'fast-xml-parser';
import { inputError } from './errors.js';

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

/**
 * Refuses what no libvirt document has and a hostile one might: a DOCTYPE (entity definitions,
 * entity expansion "bombs", external entities) and names the parser will not take (e.g.
 * __proto__). `what` names the document in the message, e.g. "/" or "domain XML".
 */
export function parseXmlSafely(text: string, what: string, hint: string): XmlNode {
  refuseDoctype(text, what, hint);
  try {
    return xmlParser.parse(text) as XmlNode;
  } catch (e) {
    throw inputError(
      'invalid-xml',
      `${what}: not usable XML: ${e instanceof Error ? e.message : String(e)}`,
      hint,
    );
  }
}

export function refuseDoctype(text: string, what: string, hint: string): void {
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) {
    throw inputError('invalid-xml', `${what}: a DOCTYPE or entity declaration is not allowed`, hint);
  }
}
