#!/usr/bin/env python3
"""The references scripts/fuzz-io.mjs checks pairpick's file readers against.

.npy: numpy itself. A file is readable when np.load(path) and np.load(path, mmap_mode='r') both
return an array (numpy's defaults: allow_pickle=False, max_header_size=10000).

.safetensors: there is no safetensors package to install here, so this is a transcription of the
Rust crate's validation (huggingface/safetensors, safetensors/src/tensor.rs, as of commit
24b0b28) and of the serde / serde_json behaviour it relies on. Each rule cites where it comes
from. Its verdict is "readable" or the reason it is not.

Usage: fuzz_io_reference.py MANIFEST   (JSON lines {"i", "path", "kind", "tensor"})
Prints one JSON line per case: {"i", "ok", "reason"?, "matrix"?: {"rows", "dim", "hash"},
"array"?: {"shape", "kind", "hash"}} where hashes are SHA-256 of the values as little-endian
float32 (floats, NaN made canonical) or int64 (integers), in C order.
"""
import hashlib
import json
import struct
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")  # numpy warns about Python 2 headers; the verdict is what counts


def f32_hash(a):
    v = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
    v = v.copy()
    v[np.isnan(v)] = np.float32("nan")  # one NaN bit pattern on both sides
    return hashlib.sha256(v.tobytes()).hexdigest()


def i64_hash(a):
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a, dtype="<i8")).tobytes()).hexdigest()


# ---- .npy: numpy --------------------------------------------------------------------------------


def npy_case(path):
    try:
        a = np.load(path)
    except Exception as e:  # noqa: BLE001 - any refusal counts
        return {"ok": False, "reason": f"np.load: {type(e).__name__}: {e}"[:300]}
    try:
        b = np.load(path, mmap_mode="r")
        b_shape = b.shape
        # fortran_order as the header says it (the memmap is laid out in that order); it only
        # matters when two dimensions exceed 1, where exactly one layout flag is set.
        fortran = bool(b.flags.f_contiguous and not b.flags.c_contiguous)
        del b
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "reason": f"np.load(mmap_mode='r'): {type(e).__name__}: {e}"[:300]}
    if not isinstance(a, np.ndarray) or a.shape != b_shape:
        return {"ok": False, "reason": "np.load gave something other than one array"}
    out = {"ok": True}
    dt = a.dtype
    if dt.kind == "f" and dt.itemsize in (2, 4, 8):
        out["array"] = {"shape": list(a.shape), "kind": "float", "descr": dt.str, "fortran": bool(fortran), "hash": f32_hash(a)}
    elif dt.kind in "iu" and dt.itemsize <= 8:
        out["array"] = {"shape": list(a.shape), "kind": "int", "descr": dt.str, "fortran": bool(fortran), "hash": i64_hash(a)}
    else:
        out["array"] = {"shape": list(a.shape), "kind": "other", "descr": dt.str, "fortran": bool(fortran)}
    # What openSource may read: a 2-D C-ordered little-endian float32/float16 matrix.
    if a.ndim == 2 and not fortran and dt.str in ("<f4", "<f2"):
        out["matrix"] = {"rows": a.shape[0], "dim": a.shape[1], "hash": f32_hash(a)}
    return out


# ---- .safetensors: the crate's rules ------------------------------------------------------------

MAX_HEADER_SIZE = 100_000_000  # tensor.rs: const MAX_HEADER_SIZE
N_LEN = 8  # tensor.rs: const N_LEN = size_of::<u64>()
U64_MAX = 2**64 - 1
RECURSION_LIMIT = 128  # serde_json de.rs: Deserializer::remaining_depth starts at 128

# tensor.rs: enum Dtype and Dtype::bitsize (serde derives the names as written).
DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}


class Refused(Exception):
    pass


# serde_json's reader, as far as these headers need it. Values: ("null",), ("bool",),
# ("num", text, kind) with kind "u64" | "i64" | "f64", ("str", s), ("arr", [..]), ("obj", [(k, v)..])
# keeping duplicate keys in order (serde decides what they mean per target type).
class Json:
    WS = " \t\n\r"  # serde_json de.rs: parse_whitespace

    def __init__(self, text):
        self.s = text
        self.i = 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in self.WS:
            self.i += 1

    def string(self):
        # serde_json read.rs: parse_str - control characters are errors; escapes per RFC 8259;
        # a \u escape of a lone surrogate is an error when the target is a String.
        s, i = self.s, self.i + 1
        out = []
        while True:
            if i >= len(s):
                raise Refused("EOF while parsing a string")
            c = s[i]
            if c == '"':
                self.i = i + 1
                return "".join(out)
            if ord(c) < 0x20:
                raise Refused("control character in a string")
            if c != "\\":
                out.append(c)
                i += 1
                continue
            e = s[i + 1] if i + 1 < len(s) else ""
            i += 2
            simple = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
            if e in simple:
                out.append(simple[e])
                continue
            if e != "u":
                raise Refused("invalid escape")

            def hex4(at):
                h = s[at:at + 4]
                if len(h) != 4 or any(ch not in "0123456789abcdefABCDEF" for ch in h):
                    raise Refused("invalid \\u escape")
                return int(h, 16)

            u = hex4(i)
            i += 4
            if 0xDC00 <= u <= 0xDFFF:
                raise Refused("lone trailing surrogate")
            if 0xD800 <= u <= 0xDBFF:
                if s[i:i + 2] != "\\u":
                    raise Refused("lone leading surrogate")
                lo = hex4(i + 2)
                if not 0xDC00 <= lo <= 0xDFFF:
                    raise Refused("lone leading surrogate")
                i += 6
                out.append(chr(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)))
            else:
                out.append(chr(u))

    def number(self):
        # serde_json de.rs: parse_integer / parse_number - a leading '-' gives i64 (or f64 when it
        # does not fit, and for "-0"), no sign gives u64 (f64 when it does not fit), a fraction
        # or exponent gives f64; an infinite f64 is an error.
        s, i = self.s, self.i
        j = i
        if j < len(s) and s[j] == "-":
            j += 1
        if j < len(s) and s[j] == "0":
            j += 1
        elif j < len(s) and s[j] in "123456789":
            while j < len(s) and s[j] in "0123456789":
                j += 1
        else:
            raise Refused("invalid number")
        integer = True
        if j < len(s) and s[j] == ".":
            integer = False
            j += 1
            k = j
            while j < len(s) and s[j] in "0123456789":
                j += 1
            if j == k:
                raise Refused("invalid number")
        if j < len(s) and s[j] in "eE":
            integer = False
            j += 1
            if j < len(s) and s[j] in "+-":
                j += 1
            k = j
            while j < len(s) and s[j] in "0123456789":
                j += 1
            if j == k:
                raise Refused("invalid number")
        text = s[i:j]
        self.i = j
        if integer:
            n = int(text)
            if text.startswith("-"):
                kind = "i64" if -(2**63) <= n < 0 else "f64"
            else:
                kind = "u64" if n <= U64_MAX else "f64"
        else:
            kind = "f64"
        if kind == "f64" and float(text) in (float("inf"), float("-inf")):
            raise Refused("number out of range")
        return ("num", text, kind)

    def value(self, depth):
        if depth >= RECURSION_LIMIT:
            raise Refused("recursion limit exceeded")
        self.ws()
        s = self.s
        if self.i >= len(s):
            raise Refused("EOF while parsing a value")
        c = s[self.i]
        if c == "{":
            self.i += 1
            pairs = []
            self.ws()
            if self.i < len(s) and s[self.i] == "}":
                self.i += 1
                return ("obj", pairs)
            while True:
                self.ws()
                if self.i >= len(s) or s[self.i] != '"':
                    raise Refused("key must be a string")
                k = self.string()
                self.ws()
                if self.i >= len(s) or s[self.i] != ":":
                    raise Refused("expected ':'")
                self.i += 1
                pairs.append((k, self.value(depth + 1)))
                self.ws()
                if self.i < len(s) and s[self.i] == ",":
                    self.i += 1
                    continue
                if self.i < len(s) and s[self.i] == "}":
                    self.i += 1
                    return ("obj", pairs)
                raise Refused("expected ',' or '}'")
        if c == "[":
            self.i += 1
            items = []
            self.ws()
            if self.i < len(s) and s[self.i] == "]":
                self.i += 1
                return ("arr", items)
            while True:
                items.append(self.value(depth + 1))
                self.ws()
                if self.i < len(s) and s[self.i] == ",":
                    self.i += 1
                    continue
                if self.i < len(s) and s[self.i] == "]":
                    self.i += 1
                    return ("arr", items)
                raise Refused("expected ',' or ']'")
        if c == '"':
            return ("str", self.string())
        for word, v in (("null", ("null",)), ("true", ("bool",)), ("false", ("bool",))):
            if s.startswith(word, self.i):
                self.i += len(word)
                return v
        return self.number()

    def document(self):
        # serde_json::from_str: one value, then only whitespace (Deserializer::end).
        v = self.value(0)
        self.ws()
        if self.i != len(self.s):
            raise Refused("trailing characters")
        return v


def usize(v):
    # serde: usize from a JSON number - u64 only (negative i64 and any f64 are type errors).
    if v[0] != "num" or v[2] != "u64":
        raise Refused("expected an unsigned integer")
    return int(v[1])


def tensor_info(v):
    # tensor.rs: #[derive(Deserialize)] struct TensorInfo { dtype, shape, data_offsets }, read from
    # serde's buffered Content (HashMetadata's #[serde(flatten)] map): a map with each field once
    # (unknown fields ignored, missing ones an error) or a sequence of exactly three elements.
    if v[0] == "arr":
        if len(v[1]) != 3:
            raise Refused("invalid length for TensorInfo")
        dtype, shape, offsets = v[1]
    elif v[0] == "obj":
        fields = {}
        for k, x in v[1]:
            if k in ("dtype", "shape", "data_offsets"):
                if k in fields:
                    raise Refused(f"duplicate field `{k}`")
                fields[k] = x
        for k in ("dtype", "shape", "data_offsets"):
            if k not in fields:
                raise Refused(f"missing field `{k}`")
        dtype, shape, offsets = fields["dtype"], fields["shape"], fields["data_offsets"]
    else:
        raise Refused("invalid type for TensorInfo")
    # enum Dtype (unit variants): its name as a string, or serde's {"NAME": null} map form.
    if dtype[0] == "str":
        name = dtype[1]
    elif dtype[0] == "obj" and len(dtype[1]) == 1 and dtype[1][0][1][0] == "null":
        name = dtype[1][0][0]
    else:
        raise Refused("invalid type for Dtype")
    if name not in DTYPE_BITS:
        raise Refused(f"unknown variant `{name}`")
    if shape[0] != "arr":  # shape: Vec<usize>
        raise Refused("invalid type for shape")
    if offsets[0] != "arr" or len(offsets[1]) != 2:  # data_offsets: (usize, usize)
        raise Refused("invalid length for data_offsets")
    return {"dtype": name, "shape": [usize(d) for d in shape[1]], "offsets": (usize(offsets[1][0]), usize(offsets[1][1]))}


def safetensors_case(path, wanted):
    with open(path, "rb") as f:
        buffer = f.read()
    try:
        # tensor.rs: SafeTensors::read_metadata
        if len(buffer) < N_LEN:
            raise Refused("HeaderTooSmall")
        n = struct.unpack("<Q", buffer[:N_LEN])[0]
        if n > MAX_HEADER_SIZE:
            raise Refused("HeaderTooLarge")
        stop = n + N_LEN
        if stop > len(buffer):  # buffer.get(N_LEN..stop) is None
            raise Refused("InvalidHeaderLength")
        try:
            string = buffer[N_LEN:stop].decode("utf-8")  # core::str::from_utf8 (strict, BOM kept)
        except UnicodeDecodeError as e:
            raise Refused(f"InvalidHeader: {e}") from None
        doc = Json(string).document()
        # tensor.rs: struct HashMetadata { #[serde(rename = "__metadata__")] metadata:
        # Option<HashMap<String, String>>, #[serde(flatten)] tensors: HashMap<String, TensorInfo> }
        if doc[0] != "obj":
            raise Refused("InvalidHeaderDeserialization: expected a map")
        tensors = {}
        seen_metadata = False
        for key, v in doc[1]:
            if key == "__metadata__":
                if seen_metadata:
                    raise Refused("duplicate field `__metadata__`")
                seen_metadata = True
                if v[0] == "null":
                    continue
                if v[0] != "obj" or any(x[0] != "str" for _, x in v[1]):
                    raise Refused("__metadata__ is not a map of strings")
                continue
            tensors[key] = tensor_info(v)  # HashMap insert: a repeated name keeps the last
        # tensor.rs: impl TryFrom<HashMetadata> for Metadata - sort by data_offsets, then validate
        ordered = sorted(tensors.values(), key=lambda t: t["offsets"])
        start = 0
        for t in ordered:  # tensor.rs: Metadata::validate
            s, e = t["offsets"]
            if s != start or e < s:
                raise Refused("InvalidOffset")
            start = e
            nelements = 1
            for d in t["shape"]:
                nelements *= d
                if nelements > U64_MAX:  # usize::checked_mul
                    raise Refused("ValidationOverflow")
            nbits = nelements * DTYPE_BITS[t["dtype"]]
            if nbits > U64_MAX:
                raise Refused("ValidationOverflow")
            if nbits % 8 != 0:
                raise Refused("MisalignedSlice")
            if e - s != nbits // 8:
                raise Refused("TensorInvalidInfo")
        if start + N_LEN + n != len(buffer):  # read_metadata: buffer_end + N_LEN + n != buffer_len
            raise Refused("MetadataIncompleteBuffer")
    except Refused as e:
        return {"ok": False, "reason": str(e)[:300]}
    out = {"ok": True}
    # The tensor openSource reads: the one named, else the only 2-D one; F32/F16 only.
    if wanted is not None:
        t = tensors.get(wanted)
    else:
        matrices = [x for x in tensors.values() if len(x["shape"]) == 2]
        t = matrices[0] if len(matrices) == 1 else None
    if t is not None and len(t["shape"]) == 2 and t["dtype"] in ("F32", "F16"):
        s, e = t["offsets"]
        raw = buffer[N_LEN + n + s:N_LEN + n + e]
        a = np.frombuffer(raw, dtype="<f4" if t["dtype"] == "F32" else "<f2").reshape(t["shape"])
        out["matrix"] = {"rows": t["shape"][0], "dim": t["shape"][1], "hash": f32_hash(a)}
    return out


def main():
    with open(sys.argv[1]) as f:
        cases = [json.loads(line) for line in f if line.strip()]
    for c in cases:
        try:
            r = npy_case(c["path"]) if c["kind"] == "npy" else safetensors_case(c["path"], c.get("tensor"))
        except Exception as e:  # noqa: BLE001 - a bug here must not pass as a verdict
            r = {"ok": None, "reason": f"reference failed: {type(e).__name__}: {e}"}
        r["i"] = c["i"]
        sys.stdout.write(json.dumps(r) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
