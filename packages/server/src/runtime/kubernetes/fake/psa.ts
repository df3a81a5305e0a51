import type { Container, PodSpec } from './types.js';

/**
 * Pod Security admission: the checks of the Pod Security Standards at `baseline` and
 * `restricted` (the `latest` version), with the API server's messages, in its order (by
 * check id). `restricted` replaces the baseline checks of capabilities and seccomp with its
 * stricter ones, as the real policy does.
 */

export type Level = 'privileged' | 'baseline' | 'restricted';

interface Check {
  id: string;
  level: 'baseline' | 'restricted';
  /** the check of baseline this one replaces at restricted */
  overrides?: string;
  run(spec: PodSpec, annotations: Record<string, string>): string | undefined;
}

interface Named {
  name: string;
  c: Container;
}

function containersOf(spec: PodSpec): Named[] {
  const all = [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...((spec.ephemeralContainers ?? []) as Container[])];
  return all.map((c) => ({ name: c.name, c }));
}

/** `container "a"` / `containers "a", "b"` */
function who(names: string[], pod = ''): string {
  const list = names.map((n) => `"${n}"`).join(', ');
  return `${pod}${names.length === 1 ? 'container' : 'containers'} ${list}`;
}

const BASELINE_CAPS = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const RESTRICTED_VOLUMES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
const VOLUME_FIELDS = new Set(['name', ...RESTRICTED_VOLUMES]);

function capsAdded(cs: Named[], allowed: (cap: string) => boolean): string[] {
  const out: string[] = [];
  for (const { name, c } of cs) {
    const bad = (c.securityContext?.capabilities?.add ?? []).filter((cap) => !allowed(cap));
    if (bad.length) out.push(`container "${name}" must not include ${bad.map((b) => `"${b}"`).join(', ')} in securityContext.capabilities.add`);
  }
  return out;
}

const CHECKS: Check[] = [
  {
    id: 'allowPrivilegeEscalation',
    level: 'restricted',
    run(spec) {
      const bad = containersOf(spec).filter(({ c }) => c.securityContext?.allowPrivilegeEscalation !== false);
      return bad.length ? `allowPrivilegeEscalation != false (${who(bad.map((x) => x.name))} must set securityContext.allowPrivilegeEscalation=false)` : undefined;
    },
  },
  {
    id: 'appArmorProfile',
    level: 'baseline',
    run(spec, annotations) {
      const bad: string[] = [];
      if (spec.securityContext?.appArmorProfile?.type === 'Unconfined') bad.push('pod must not set securityContext.appArmorProfile.type to "Unconfined"');
      for (const { name, c } of containersOf(spec)) {
        if (c.securityContext?.appArmorProfile?.type === 'Unconfined') bad.push(`container "${name}" must not set securityContext.appArmorProfile.type to "Unconfined"`);
      }
      for (const [k, v] of Object.entries(annotations)) if (k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v === 'unconfined') bad.push(`${k}="unconfined"`);
      return bad.length ? `forbidden AppArmor profile (${bad.join(', ')})` : undefined;
    },
  },
  {
    id: 'capabilities_baseline',
    level: 'baseline',
    run(spec) {
      const bad = capsAdded(containersOf(spec), (cap) => BASELINE_CAPS.has(cap));
      return bad.length ? `non-default capabilities (${bad.join('; ')})` : undefined;
    },
  },
  {
    id: 'capabilities_restricted',
    level: 'restricted',
    overrides: 'capabilities_baseline',
    run(spec) {
      const cs = containersOf(spec);
      const noDrop = cs.filter(({ c }) => !(c.securityContext?.capabilities?.drop ?? []).includes('ALL')).map((x) => x.name);
      const parts = noDrop.length ? [`${who(noDrop)} must set securityContext.capabilities.drop=["ALL"]`] : [];
      parts.push(...capsAdded(cs, (cap) => cap === 'NET_BIND_SERVICE'));
      return parts.length ? `unrestricted capabilities (${parts.join('; ')})` : undefined;
    },
  },
  {
    id: 'hostNamespaces',
    level: 'baseline',
    run(spec) {
      const on = (['hostNetwork', 'hostPID', 'hostIPC'] as const).filter((f) => spec[f] === true).map((f) => `${f}=true`);
      return on.length ? `host namespaces (${on.join(', ')})` : undefined;
    },
  },
  {
    id: 'hostPathVolumes',
    level: 'baseline',
    run(spec) {
      const bad = (spec.volumes ?? []).filter((v) => v.hostPath).map((v) => `"${v.name}"`);
      return bad.length ? `hostPath volumes (${bad.length === 1 ? 'volume' : 'volumes'} ${bad.join(', ')})` : undefined;
    },
  },
  {
    id: 'hostPorts',
    level: 'baseline',
    run(spec) {
      const bad: string[] = [];
      for (const { name, c } of containersOf(spec)) {
        const ports = (c.ports ?? []).filter((p) => p.hostPort).map((p) => String(p.hostPort));
        if (ports.length) bad.push(`container "${name}" uses ${ports.length === 1 ? 'hostPort' : 'hostPorts'} ${ports.join(', ')}`);
      }
      return bad.length ? `hostPort (${bad.join('; ')})` : undefined;
    },
  },
  {
    id: 'privileged',
    level: 'baseline',
    run(spec) {
      const bad = containersOf(spec).filter(({ c }) => c.securityContext?.privileged === true).map((x) => x.name);
      return bad.length ? `privileged (${who(bad)} must not set securityContext.privileged=true)` : undefined;
    },
  },
  {
    id: 'procMount',
    level: 'baseline',
    run(spec) {
      const bad = containersOf(spec).filter(({ c }) => c.securityContext?.procMount && c.securityContext.procMount !== 'Default').map((x) => x.name);
      return bad.length ? `procMount (${who(bad)} must not set securityContext.procMount to "Unmasked")` : undefined;
    },
  },
  {
    id: 'restrictedVolumes',
    level: 'restricted',
    run(spec) {
      const bad: string[] = [];
      for (const v of spec.volumes ?? []) {
        const types = Object.keys(v).filter((k) => !VOLUME_FIELDS.has(k));
        if (types.length) bad.push(`volume "${v.name}" uses restricted volume type "${types[0]}"`);
      }
      return bad.length ? `restricted volume types (${bad.join(', ')})` : undefined;
    },
  },
  {
    id: 'runAsNonRoot',
    level: 'restricted',
    run(spec) {
      const pod = spec.securityContext?.runAsNonRoot;
      if (pod === false) return 'runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)';
      const cs = containersOf(spec);
      const explicitFalse = cs.filter(({ c }) => c.securityContext?.runAsNonRoot === false).map((x) => x.name);
      if (explicitFalse.length) return `runAsNonRoot != true (${who(explicitFalse)} must not set securityContext.runAsNonRoot=false)`;
      if (pod === true) return undefined;
      const unset = cs.filter(({ c }) => c.securityContext?.runAsNonRoot !== true).map((x) => x.name);
      return unset.length ? `runAsNonRoot != true (${who(unset, 'pod or ')} must set securityContext.runAsNonRoot=true)` : undefined;
    },
  },
  {
    id: 'runAsUser',
    level: 'restricted',
    run(spec) {
      if (spec.securityContext?.runAsUser === 0) return 'runAsUser=0 (pod must not set runAsUser=0)';
      const bad = containersOf(spec).filter(({ c }) => c.securityContext?.runAsUser === 0).map((x) => x.name);
      return bad.length ? `runAsUser=0 (${who(bad)} must not set runAsUser=0)` : undefined;
    },
  },
  {
    id: 'seccompProfile_baseline',
    level: 'baseline',
    run(spec) {
      const bad: string[] = [];
      if (spec.securityContext?.seccompProfile?.type === 'Unconfined') bad.push('pod must not set securityContext.seccompProfile.type to "Unconfined"');
      const cs = containersOf(spec).filter(({ c }) => c.securityContext?.seccompProfile?.type === 'Unconfined').map((x) => x.name);
      if (cs.length) bad.push(`${who(cs)} must not set securityContext.seccompProfile.type to "Unconfined"`);
      return bad.length ? `seccompProfile (${bad.join('; ')})` : undefined;
    },
  },
  {
    id: 'seccompProfile_restricted',
    level: 'restricted',
    overrides: 'seccompProfile_baseline',
    run(spec) {
      const ok = (t: string | undefined) => t === 'RuntimeDefault' || t === 'Localhost';
      const pod = spec.securityContext?.seccompProfile?.type;
      if (pod !== undefined && !ok(pod)) return `seccompProfile (pod must not set securityContext.seccompProfile.type to "${pod}")`;
      const cs = containersOf(spec);
      const badSet = cs.filter(({ c }) => c.securityContext?.seccompProfile?.type !== undefined && !ok(c.securityContext.seccompProfile.type)).map((x) => x.name);
      if (badSet.length) return `seccompProfile (${who(badSet)} must not set securityContext.seccompProfile.type to "${cs.find((x) => x.name === badSet[0])?.c.securityContext?.seccompProfile?.type}")`;
      if (ok(pod)) return undefined;
      const unset = cs.filter(({ c }) => !ok(c.securityContext?.seccompProfile?.type)).map((x) => x.name);
      return unset.length ? `seccompProfile (${who(unset, 'pod or ')} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")` : undefined;
    },
  },
  {
    id: 'seLinuxOptions',
    level: 'baseline',
    run(spec) {
      const types = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);
      const opts = [spec.securityContext?.seLinuxOptions, ...containersOf(spec).map(({ c }) => c.securityContext?.seLinuxOptions)];
      const bad = opts.some((o) => o && (!types.has(o.type ?? '') || o.user || o.role));
      return bad ? 'seLinuxOptions (forbidden securityContext.seLinuxOptions: type, user or role)' : undefined;
    },
  },
  {
    id: 'sysctls',
    level: 'baseline',
    run(spec) {
      const bad = (spec.securityContext?.sysctls ?? []).map((s) => s.name).filter((n) => !SAFE_SYSCTLS.has(n));
      return bad.length ? `forbidden sysctls (${bad.join(', ')})` : undefined;
    },
  },
];

/** the violations of a pod (or pod template) at `level`, in the API server's words and order */
export function violations(level: Level, spec: PodSpec, annotations: Record<string, string> = {}): string[] {
  if (level === 'privileged') return [];
  const checks = CHECKS.filter((c) => c.level === 'baseline' || level === 'restricted');
  const overridden = new Set(checks.map((c) => c.overrides).filter(Boolean));
  return checks.filter((c) => !overridden.has(c.id)).flatMap((c) => c.run(spec, annotations) ?? []);
}

export const LEVELS: Level[] = ['privileged', 'baseline', 'restricted'];

/** the namespace's policy for `mode` (enforce, warn, audit) from its labels */
export function policyOf(labels: Record<string, string> | undefined, mode: 'enforce' | 'warn' | 'audit'): { level: Level; version: string } | undefined {
  const level = labels?.[`pod-security.kubernetes.io/${mode}`];
  if (!level) return undefined;
  const version = labels?.[`pod-security.kubernetes.io/${mode}-version`] ?? 'latest';
  // an unknown level is enforced as the strictest, as the admission controller does
  return { level: LEVELS.includes(level as Level) ? (level as Level) : 'restricted', version };
}
