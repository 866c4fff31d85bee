# Turns pairpick's .cu/.cuh files into host C++ for the fiber emulator (see run.sh): kernel
# launches `k<<<grid, block, smem, stream>>>(args)` become `::emu::launch(::emu::config(grid,
# block, smem, stream), [](auto... a) { k(a...); }, args)` (arguments copied at the launch, so a
# launch recorded into a graph keeps the values it was issued with), dynamic shared memory comes from the emulator, <mma.h> and
# <cuda_pipeline.h> are replaced by the emulator's WMMA and cp.async.
#
# Static shared arrays become function statics that (1) are refilled with garbage at the start
# of every block (::emu::shared_poison; a thread reading what no thread of its block wrote sees
# NaN/garbage, as on the device) and (2) sit at the weakest address the device guarantees: a
# declaration without __align__ gets only its type's alignment (placed at 64k + alignof(T)), so
# a 16/32-byte access (WMMA, vector loads) through it fails the emulator's alignment checks.
import os
import re
import sys
src_dir, out_dir = sys.argv[1], sys.argv[2]
SHARED = re.compile(r'^(?P<indent>[ \t]*)__shared__\s+(?:__align__\((?P<align>[^)]*)\)\s+)?(?P<rest>[^;]*);', re.M)
def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '<[(': depth += 1
        elif ch in '>])': depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur.strip()); cur = ''
        else:
            cur += ch
    parts.append(cur.strip())
    return parts
def shared_decl(m):
    indent, align, rest = m.group('indent'), m.group('align'), m.group('rest')
    parts = split_top(rest)
    first = parts[0]
    b = first.find('[')
    head = first if b < 0 else first[:b]
    name = re.search(r'(\w+)\s*$', head).group(1)
    typ = head[:head.rstrip().rfind(name)].strip()
    decls = [first[len(head) - len(head.lstrip()) + head.find(name):]] + parts[1:]
    out = []
    for d in decls:
        b = d.find('[')
        nm, dims = (d, '') if b < 0 else (d[:b].strip(), d[b:])
        if align:
            box = 'static struct alignas(%s) { %s v%s; } %s_emu_box;' % (align, typ, dims, nm)
        else:
            box = 'static struct alignas(64) { unsigned char pad[alignof(%s)]; %s v%s; } %s_emu_box;' % (typ, typ, dims, nm)
        out.append('%s auto& %s = %s_emu_box.v; ::emu::shared_poison(&%s, sizeof(%s));' % (box, nm, nm, nm, nm))
    return indent + ' '.join(out)
def transform(text):
    text = text.replace('#include <mma.h>', '')
    text = text.replace('#include <cuda_pipeline.h>', '')  # cp.async: cuda_emu.h's pipeline primitives
    text = text.replace('extern __shared__ __align__(128) unsigned char smem[];', 'unsigned char* smem = ::emu::dynamic_smem();')
    text = SHARED.sub(shared_decl, text)
    out, i = [], 0
    while True:
        j = text.find('<<<', i)
        if j < 0:
            out.append(text[i:]); break
        # kernel expression: identifier with optional <...> immediately before
        k = j
        if text[k-1] == '>':
            depth = 0
            while True:
                k -= 1
                if text[k] == '>': depth += 1
                elif text[k] == '<':
                    depth -= 1
                    if depth == 0: break
        while k > 0 and (text[k-1].isalnum() or text[k-1] in '_:'):
            k -= 1
        kernel = text[k:j]
        e = text.index('>>>', j)
        config = text[j+3:e]
        p = e + 3
        assert text[p] == '(', text[j-50:p+10]
        depth, q = 0, p
        while True:
            if text[q] == '(': depth += 1
            elif text[q] == ')':
                depth -= 1
                if depth == 0: break
            q += 1
        args = text[p+1:q]
        out.append(text[i:k])
        out.append('::emu::launch(::emu::config(%s), [](auto... a) { %s(a...); }%s)' % (config, kernel, ', ' + args if args.strip() else ''))
        i = q + 1
    return ''.join(out)
for name in os.listdir(src_dir):
    if name.endswith(('.cu', '.cuh', '.h')):
        t = open(os.path.join(src_dir, name)).read()
        ext = '.cpp' if name.endswith('.cu') else ''
        open(os.path.join(out_dir, name + ext), 'w').write(transform(t))
