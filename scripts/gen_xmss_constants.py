"""Write the Poseidon parameters of the lean XMSS scheme as a C header.

The lean signature scheme hashes with Poseidon over KoalaBear at widths 16 and 24: x^3
S-boxes, a circulant MDS matrix, 8 full and 20 (width 16) or 23 (width 24) partial
rounds. Its round constants and MDS rows are parameters of the standard, defined by
leanSpec (``lean_spec.spec.crypto.poseidon``, after Plonky3's KoalaBear instances). This
script reads them from a leanSpec source tree and writes them for
``bindings/lean_p2p_xmss.c``; it is how ``bindings/lean_p2p_xmss_constants.h`` was made,
and a test runs it again against ``../shared/peers/leanspec`` to prove the header has
not drifted.

It parses the module's source rather than importing it (leanSpec's import needs numba
and pydantic), so any Python 3.11+ runs it:

    python scripts/gen_xmss_constants.py PATH/TO/leanSpec > bindings/lean_p2p_xmss_constants.h
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

NAMES = ("_RAW_CONSTANTS_16", "_MDS_FIRST_ROW_16", "_RAW_CONSTANTS_24", "_MDS_FIRST_ROW_24")
EXPECTED_LENGTHS = {
    "_RAW_CONSTANTS_16": (8 + 20) * 16,
    "_MDS_FIRST_ROW_16": 16,
    "_RAW_CONSTANTS_24": (8 + 23) * 24,
    "_MDS_FIRST_ROW_24": 24,
}
MODULUS = 2**31 - 2**24 + 1


def read_parameters(leanspec: Path) -> dict[str, list[int]]:
    """The four integer lists of leanSpec's Poseidon module, checked for length and range."""
    source_path = leanspec / "src" / "lean_spec" / "spec" / "crypto" / "poseidon.py"
    tree = ast.parse(source_path.read_text(), str(source_path))
    found: dict[str, list[int]] = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in NAMES and node.value is not None:
            values = ast.literal_eval(node.value)
            found[target.id] = [int(value) for value in values]
    for name in NAMES:
        values = found.get(name)
        if values is None:
            raise SystemExit(f"{source_path}: {name} not found")
        if len(values) != EXPECTED_LENGTHS[name]:
            raise SystemExit(f"{name}: {len(values)} values, expected {EXPECTED_LENGTHS[name]}")
        if any(not 0 <= value < MODULUS for value in values):
            raise SystemExit(f"{name}: a value is not a KoalaBear field element")
    return found


def header(parameters: dict[str, list[int]]) -> str:
    lines = [
        "/* Poseidon parameters of the lean XMSS scheme (KoalaBear, widths 16 and 24).",
        " * Written by scripts/gen_xmss_constants.py from leanSpec's",
        " * src/lean_spec/spec/crypto/poseidon.py; do not edit by hand. */",
        "#ifndef LEAN_P2P_XMSS_CONSTANTS_H",
        "#define LEAN_P2P_XMSS_CONSTANTS_H",
        "",
        "#include <stdint.h>",
        "",
    ]
    for name in NAMES:
        c_name = "LEAN_XMSS" + name.replace("_RAW", "").upper()
        values = parameters[name]
        lines.append(f"static const uint32_t {c_name}[{len(values)}] = {{")
        for start in range(0, len(values), 6):
            row = ", ".join(f"0x{value:08x}u" for value in values[start : start + 6])
            lines.append(f"    {row},")
        lines.append("};")
        lines.append("")
    lines.append("#endif /* LEAN_P2P_XMSS_CONSTANTS_H */")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(header(read_parameters(Path(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
