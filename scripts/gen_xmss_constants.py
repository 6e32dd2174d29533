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


def _inverse(matrix: list[list[int]]) -> list[list[int]]:
    """The inverse of a square matrix over the field (Gauss-Jordan)."""
    size = len(matrix)
    rows = [row[:] + [int(i == j) for j in range(size)] for i, row in enumerate(matrix)]
    for column in range(size):
        pivot = next(r for r in range(column, size) if rows[r][column])
        rows[column], rows[pivot] = rows[pivot], rows[column]
        scale = pow(rows[column][column], MODULUS - 2, MODULUS)
        rows[column] = [value * scale % MODULUS for value in rows[column]]
        for r in range(size):
            if r != column and rows[r][column]:
                factor = rows[r][column]
                rows[r] = [
                    (a - factor * b) % MODULUS for a, b in zip(rows[r], rows[column], strict=True)
                ]
    return [row[size:] for row in rows]


def _multiply(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    return [
        [sum(a[i][k] * b[k][j] for k in range(len(b))) % MODULUS for j in range(len(b[0]))]
        for i in range(len(a))
    ]


def fast_partial_rounds(
    constants: list[int], first_row: list[int], partial_rounds: int
) -> dict[str, list[int]]:
    """The partial rounds rewritten with sparse matrices (the Poseidon paper's appendix
    on efficient partial rounds), as tables for the C code.

    1. A partial round's S-box touches only element 0, so the constants it adds to the
       other elements can be moved through its MDS matrix into the next round's; in
       the end each partial round adds one scalar to element 0, and what is left over is
       added with the first closing full round's constants.
    2. Each MDS product B splits as S * D with D = diag(1, B') (B' the lower-right block)
       and S sparse (first row, first column, identity): D commutes with a partial
       round's S-box and scalar, so walking back from the last round, each D joins the
       round before's matrix, and only the first round's D stays dense.
    """
    width = len(first_row)
    mds = [[first_row[(j - i) % width] for j in range(width)] for i in range(width)]

    def round_constants(index: int) -> list[int]:
        return constants[index * width : (index + 1) * width]

    scalars = []
    carry = [0] * width
    for r in range(partial_rounds):
        shifted = [(c + k) % MODULUS for c, k in zip(round_constants(4 + r), carry, strict=True)]
        scalars.append(shifted[0])
        rest = [0, *shifted[1:]]
        carry = [sum(mds[i][j] * rest[j] for j in range(width)) % MODULUS for i in range(width)]
    closing = [
        (c + k) % MODULUS for c, k in zip(round_constants(4 + partial_rounds), carry, strict=True)
    ]

    s00: list[int] = []
    rows: list[list[int]] = []
    columns: list[list[int]] = []
    product = mds
    for _ in range(partial_rounds):  # last round first
        lower_right = [row[1:] for row in product[1:]]
        first = product[0][1:]
        rows.insert(0, _multiply([first], _inverse(lower_right))[0])
        columns.insert(0, [row[0] for row in product[1:]])
        s00.insert(0, product[0][0])
        diagonal = [[1] + [0] * (width - 1)] + [[0, *row] for row in lower_right]
        product = _multiply(diagonal, mds)
    first_dense = lower_right  # round 0's, from the last pass of the loop
    return {
        "PARTIAL_SCALARS": scalars,
        "CLOSING_CONSTANTS": closing,
        "SPARSE_00": s00,
        "SPARSE_ROW": [value for row in rows for value in row],
        "SPARSE_COLUMN": [value for column in columns for value in column],
        "FIRST_DENSE": [value for row in first_dense for value in row],
    }


FULL_ROUNDS_HALF = 4
PARTIAL_ROUNDS = {"16": 20, "24": 23}


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
    for width, partial in PARTIAL_ROUNDS.items():
        tables = fast_partial_rounds(
            parameters[f"_RAW_CONSTANTS_{width}"], parameters[f"_MDS_FIRST_ROW_{width}"], partial
        )
        lines.append(f"/* Width {width}'s partial rounds with sparse matrices (derived). */")
        for name, values in tables.items():
            lines.append(f"static const uint32_t LEAN_XMSS_{name}_{width}[{len(values)}] = {{")
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
