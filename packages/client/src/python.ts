// A Python 3 client generated from the gateway's OpenAPI document: one module, the
// standard library only (urllib.request + json), one method per unary endpoint.
// Pure string work: no Node API, so it runs in browsers too.

interface Schema {
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
}

interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
  'x-micro-stream'?: string;
}

export interface OpenApiDocument {
  openapi?: string;
  info?: { title?: string; version?: string };
  paths?: Record<string, Record<string, Operation>>;
}

const KEYWORDS = new Set(
  ('False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda ' +
    'nonlocal not or pass raise return try while with yield self match case type').split(' '),
);

/** `ListServices` → `list_services`, `HTTPThing` → `http_thing`, `a-b.c` → `a_b_c`. */
export function snakeCase(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .replace(/_+/g, '_')
    .toLowerCase();
}

/** A Python identifier for a name: snake case, never a keyword, never starting with a digit. */
function identifier(name: string): string {
  let id = snakeCase(name) || 'x';
  if (/^[0-9]/.test(id)) id = `_${id}`;
  if (KEYWORDS.has(id) || id.startsWith('_unset')) id = `${id}_`;
  return id;
}

/** A Python string literal (JSON's escapes are Python's, and `\u2028` is fine in Python). */
function pyString(s: string): string {
  return JSON.stringify(s);
}

/** Text safe inside a `"""` docstring. */
function docText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"""/g, '\\"\\"\\"').replace(/\r\n?/g, '\n');
}

function pyType(s: Schema | undefined): string {
  if (!s) return 'Any';
  const t = Array.isArray(s.type) ? s.type.filter((x) => x !== 'null') : s.type;
  const one = Array.isArray(t) ? (t.length === 1 ? t[0] : undefined) : t;
  const nullable = Array.isArray(s.type) && s.type.includes('null');
  const base = (() => {
    switch (one) {
      case 'string':
        return 'str';
      case 'integer':
        return 'int';
      case 'number':
        return 'float';
      case 'boolean':
        return 'bool';
      case 'array':
        return `list[${pyType(s.items)}]`;
      case 'object':
        return 'dict[str, Any]';
      default:
        return 'Any';
    }
  })();
  return nullable && base !== 'Any' ? `${base} | None` : base;
}

function jsonSchemaOf(op: Operation): Schema | undefined {
  return op.requestBody?.content?.['application/json']?.schema;
}

const PRELUDE = `
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional, Union


class MicroError(Exception):
    """An error of the Micro API gateway: {"id", "code", "detail", "status"}."""

    def __init__(self, id: str, code: int, detail: str, status: str):
        super().__init__(f"{code} {status}: {detail} ({id})")
        self.id = id
        self.code = code
        self.detail = detail
        self.status = status


class MicroConnectionError(ConnectionError):
    """The gateway could not be reached (refused, DNS, TLS, timeout); names the URL."""

    def __init__(self, url: str, reason: Any):
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class MicroClient:
    """A client of the Micro API gateway.

    url: the gateway, e.g. "http://127.0.0.1:8080"
    token: an access token or API key, or a function returning one
    namespace: sent as Micro-Namespace (admins of micro only)
    timeout: seconds a call may take
    """

    def __init__(self, url: str, token: Union[str, Callable[[], str], None] = None, namespace: Optional[str] = None, timeout: float = 30):
        self.url = url.rstrip("/")
        self.token = token
        self.namespace = namespace
        self.timeout = timeout

    def call(self, service: str, endpoint: str, request: Optional[dict] = None) -> Any:
        """Calls any endpoint: POST /v1/{service}/{endpoint} ("Handler.Method" → Handler/Method)."""
        path = "/v1/" + urllib.parse.quote(service, safe="") + "/" + "/".join(urllib.parse.quote(p, safe="") for p in endpoint.split("."))
        return self._post(path, service, request or {})

    def _post(self, path: str, service: str, body: dict) -> Any:
        url = self.url + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        token = self.token() if callable(self.token) else self.token
        if token:
            headers["Authorization"] = "Bearer " + token
        if self.namespace:
            headers["Micro-Namespace"] = self.namespace
        req = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                text = res.read().decode("utf-8")
                return json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            try:
                err = json.loads(text)
            except ValueError:
                err = None
            if isinstance(err, dict) and isinstance(err.get("code"), int) and isinstance(err.get("detail"), str):
                raise MicroError(str(err.get("id", service)), err["code"], err["detail"], str(err.get("status", e.reason))) from None
            raise MicroError(service, e.code, text[:500] or str(e.reason), str(e.reason)) from None
        except urllib.error.URLError as e:
            raise MicroConnectionError(url, e.reason) from None
        except TimeoutError as e:
            raise MicroConnectionError(url, "timed out after %s s" % self.timeout) from e
`;

/**
 * The Python module of a gateway's OpenAPI document: `MicroClient(url, token=None,
 * namespace=None, timeout=30)` with one method per unary endpoint (`greeter.Greeter.Hello`
 * → `greeter_greeter_hello`), keyword arguments from the request schema's properties,
 * `MicroError(id, code, detail, status)` on errors. Streams are left out (no WebSocket in
 * the standard library); `call(service, endpoint, request)` reaches anything.
 */
export function pythonClient(openapi: OpenApiDocument): string {
  const out: string[] = [];
  const title = openapi.info?.title ?? 'Micro API';
  out.push(`"""${docText(`${title}: a client generated from the gateway's OpenAPI document (${openapi.openapi ?? '3.1'}).`)}\n\nStandard library only. Regenerate it when the services change.\n"""`);
  out.push(PRELUDE.trimEnd());
  const used = new Set(['call', '_post', 'url', 'token', 'namespace', 'timeout']);
  const paths = Object.entries(openapi.paths ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [path, item] of paths) {
    const op = item.post;
    if (!op || op['x-micro-stream']) continue;
    const m = /^\/v1\/([^/]+)\/(.+)$/.exec(path);
    if (!m) continue;
    const service = decodeURIComponent(m[1] as string);
    const endpoint = (m[2] as string).split('/').map(decodeURIComponent).join('.');
    let name = identifier(op.operationId ?? `${service}.${endpoint}`);
    if (used.has(name)) {
      let i = 2;
      while (used.has(`${name}_${i}`)) i++;
      name = `${name}_${i}`;
    }
    used.add(name);

    const schema = jsonSchemaOf(op);
    const props = Object.entries(schema?.properties ?? {});
    const required = new Set(schema?.required ?? []);
    const args: string[] = [];
    const assigns: string[] = [];
    const argDocs: string[] = [];
    const taken = new Set(['self', 'extra']);
    for (const [prop, ps] of props) {
      let arg = /^[A-Za-z_][A-Za-z0-9_]*$/.test(prop) && !KEYWORDS.has(prop) ? prop : identifier(prop);
      while (taken.has(arg)) arg = `${arg}_`;
      taken.add(arg);
      const t = pyType(ps);
      if (required.has(prop)) {
        args.push(`${arg}: ${t}`);
        assigns.push(`        body[${pyString(prop)}] = ${arg}`);
      } else {
        args.push(`${arg}: ${t} = UNSET`);
        assigns.push(`        if ${arg} is not UNSET:\n            body[${pyString(prop)}] = ${arg}`);
      }
      const d = ps.description ? `: ${ps.description}` : '';
      argDocs.push(`    ${arg} (${t}${required.has(prop) ? '' : ', optional'})${d}`);
    }
    const sig = ['self', ...(args.length ? ['*', ...args] : []), '**extra: Any'].join(', ');
    const summary = op.summary ?? `${service} ${endpoint}`;
    const doc = [`${summary}`, '', `POST ${path}`];
    if (op.description && op.description !== summary) doc.push('', op.description);
    if (argDocs.length) doc.push('', 'Args:', ...argDocs);
    const resp = op.responses?.['200'];
    const respSchema = resp?.content?.['application/json']?.schema;
    if (respSchema?.properties) doc.push('', `Returns: a dict with ${Object.keys(respSchema.properties).join(', ')}`);
    doc.push('', 'Raises: MicroError on an error of the gateway or the service.');
    out.push('');
    out.push(`    def ${name}(${sig}) -> ${pyType(respSchema)}:`);
    out.push(`        """${docText(doc.join('\n')).split('\n').join('\n        ').replace(/[ ]+\n/g, '\n')}\n        """`);
    out.push('        body: dict = {}');
    out.push(...assigns);
    out.push('        body.update(extra)');
    out.push(`        return self._post(${pyString(path)}, ${pyString(service)}, body)`);
  }
  return out.join('\n') + '\n';
}
