#!/usr/bin/env python3
"""An independent implementation of spec/keys.md (schema 2): writes the
manifest of the sample used by the golden test in engine/builder/src/keys.rs
to stdout. `python3 spec/vectors/key_manifest.py | b3sum` gives the key."""
import struct, sys

def u8(v): return bytes([v])
def u32(v): return struct.pack('<I', v)
def u64(v): return struct.pack('<Q', v)
def bstr(b): return u64(len(b)) + b
def s(x): return bstr(x.encode())
def strs(v): return u64(len(v)) + b''.join(s(x) for x in v)

m = b'cas-key\0'
m += s('schema') + u32(2)
m += s('kind') + s('manual')
m += s('behaviour') + s('sandbox')
phases = [('build-commands', ['echo hi > x']), ('install-commands', ['make -j%{max-jobs} install'])]
m += s('phases') + u64(len(phases)) + b''.join(s(n) + strs(c) for n, c in phases)
env = sorted({'PATH': '/usr/bin:/bin', 'LC_ALL': 'C'}.items(), key=lambda kv: kv[0].encode())
m += s('environment') + u64(len(env)) + b''.join(s(k) + s(v) for k, v in env)
m += s('sandbox') + s('x86_64') + u32(0) + u32(0) + u8(0) + s('/build') + s('/install') + s('cas') + u32(0o022)
config = [('output', ['/'])]
m += s('config') + u64(len(config)) + b''.join(s(k) + strs(v) for k, v in config)
sources = [b'local\0abc']
m += s('sources') + u64(len(sources)) + b''.join(bstr(x) for x in sources)
deps = [bytes([7] * 32)]
m += s('dependencies') + u64(len(deps)) + b''.join(deps)
m += s('end')
sys.stdout.buffer.write(m)
