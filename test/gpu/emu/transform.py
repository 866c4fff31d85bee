# Turns pairpick's .cu/.cuh files into host C++ for the fiber emulator (see run.sh): kernel
# launches `k<<<grid, block, smem, stream>>>(args)` become `::emu::launch(grid, block, smem,
# stream, [=]() { k(args); })`, dynamic shared memory comes from the emulator, <mma.h> is replaced
# by the emulator's WMMA.
import os
import sys
src_dir, out_dir = sys.argv[1], sys.argv[2]
def transform(text):
    text = text.replace('#include <mma.h>', '')
    text = text.replace('extern __shared__ __align__(128) unsigned char smem[];', 'unsigned char* smem = ::emu::dynamic_smem();')
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
        out.append('::emu::launch(%s, [=]() { %s(%s); })' % (config, kernel, args))
        i = q + 1
    return ''.join(out)
for name in os.listdir(src_dir):
    if name.endswith(('.cu', '.cuh', '.h')):
        t = open(os.path.join(src_dir, name)).read()
        ext = '.cpp' if name.endswith('.cu') else ''
        open(os.path.join(out_dir, name + ext), 'w').write(transform(t))
