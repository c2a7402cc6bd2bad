import sys, os
sys.path.insert(0, 'bench/kernels')
import int8_stem
base = int8_stem.kernel_text()
variants = {
    'full': base,
    'no-assemble': base.replace('v |= (offset < 0 ? 0 : (int)(unsigned char)from[offset]) << (8 * b);', 'v |= offset << (8 * b);'),
    'no-load': base.replace('rows[i] = inside ? corner[(i64)ky * DH * W * C + b] : (signed char)pad;', 'rows[i] = (signed char)b;'),
    'no-copy': base.replace('out[c] = *reinterpret_cast<const int4*>(staged + r * pitch + (c - r * chunks) * 16);', 'if (r < 0) out[c] = *reinterpret_cast<const int4*>(staged + r * pitch + (c - r * chunks) * 16);'),
}
texts = []
for name, text in variants.items():
    assert name == 'full' or text != base, name
    texts.append(text.replace('kiln_int8_patches_staged(', 'kiln_int8_patches_staged_' + name.replace('-', '_') + '('))
int8_stem.kernel_text = lambda: ''.join(texts)
orig_main = int8_stem.main
names = ['kiln_int8_patches_staged_' + n.replace('-', '_') for n in variants]
src = open('bench/kernels/int8_stem.py').read()
src = src.replace("names = ['kiln_int8_patches_staged']", 'names = ' + repr(names)).replace('from attention import', 'from attention import')
code = compile(src, 'int8_stem_probe', 'exec')
g = {'__name__': 'probe', '__file__': os.path.abspath('bench/kernels/int8_stem.py')}
exec(code, g)
g['kernel_text'] = lambda: ''.join(texts)
g['main']()
