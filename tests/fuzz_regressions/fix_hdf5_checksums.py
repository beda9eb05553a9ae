"""Makes the metadata checksums of an edited HDF5 file valid again, so a hand-made
damaged input gets past hdf5-pure's checksum check to the code it is meant to reach.

    python3 tests/fuzz_regressions/fix_hdf5_checksums.py FILE.h5 target/debug/cellvae inspect

Runs the command on FILE.h5; while it reports "checksum mismatch: expected X, computed
Y", writes Y over X where X is stored (the block runs from the nearest signature before
it; the script checks that lookup3 of that block is Y). Used for
tenx_h5/chunked-declares-2pow28-values.h5 and
tenx_h5/fixed-array-shift-overflow-checksummed.h5.
"""
import sys, struct, subprocess, re
M=0xffffffff
def rot(x,k): return ((x<<k)|(x>>(32-k)))&M
def lookup3(d):
    a=b=c=(0xdeadbeef+len(d))&M
    k=d
    while len(k)>12:
        a=(a+struct.unpack('<I',k[0:4])[0])&M; b=(b+struct.unpack('<I',k[4:8])[0])&M; c=(c+struct.unpack('<I',k[8:12])[0])&M
        a=((a-c)&M)^rot(c,4); c=(c+b)&M
        b=((b-a)&M)^rot(a,6); a=(a+c)&M
        c=((c-b)&M)^rot(b,8); b=(b+a)&M
        a=((a-c)&M)^rot(c,16); c=(c+b)&M
        b=((b-a)&M)^rot(a,19); a=(a+c)&M
        c=((c-b)&M)^rot(b,4); b=(b+a)&M
        k=k[12:]
    if not k: return c
    k=k+b'\0'*(12-len(k))
    a=(a+struct.unpack('<I',k[0:4])[0])&M; b=(b+struct.unpack('<I',k[4:8])[0])&M; c=(c+struct.unpack('<I',k[8:12])[0])&M
    c=((c^b)-rot(b,14))&M; a=((a^c)-rot(c,11))&M; b=((b^a)-rot(a,25))&M; c=((c^b)-rot(b,16))&M
    a=((a^c)-rot(c,4))&M; b=((b^a)-rot(a,14))&M; c=((c^b)-rot(b,24))&M
    return c
assert lookup3(b"Four score and seven years ago")==0x17770551
f=sys.argv[1]; b=bytearray(open(f,'rb').read())
sigs=[b'OHDR',b'OCHK',b'FAHD',b'FADB',b'BTHD',b'BTLF',b'BTIN',b'FRHP',b'FHDB',b'FHIB',b'FSHD',b'FSSE',b'EAHD',b'EAIB',b'EASB',b'EADB',b'\x89HDF']
for it in range(20):
    open(f,'wb').write(b)
    out=subprocess.run(sys.argv[2:]+[f],capture_output=True,text=True)
    m=re.search(r'checksum mismatch: expected 0x([0-9a-f]+), computed 0x([0-9a-f]+)',out.stdout+out.stderr)
    if not m: print((out.stdout+out.stderr)[-400:]); break
    exp=int(m.group(1),16); comp=int(m.group(2),16)
    p=b.find(struct.pack('<I',exp))
    starts=[b.rfind(s,0,p) for s in sigs]; st=max(starts)
    assert lookup3(bytes(b[st:p]))==comp, (st,p)
    b[p:p+4]=struct.pack('<I',comp); print('fixed block',st,p)
