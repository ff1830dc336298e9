"""The optimiser's device work, one row (or one row block) at a time: the routines both drivers run.

CSR products as row gathers: y_i = sum_e data[e] x[indices[e]] over the entries of row i. D^T g is
the same gather over a transposed CSR copy (built by the two transpose routines below), so neither
product writes to scattered addresses. The accumulator is float64 on every target (float32 values
times a float64 vector promote to float64), so the CPU and the GPU sum the same numbers.
A row may be split over n_lanes workers (lane = 0..n_lanes-1 takes every n_lanes-th entry): the
GPU gives a row to a warp; the CPU uses one lane.

Per-voxel penalties of objectives.py: kind +1 = squared overdose max(0, d - ref)^2, kind -1 =
squared underdose max(0, ref - d)^2, kind 0 = squared deviation (d - ref)^2; value and gradient are
scaled by ``scale`` (weight / number of voxels of the structure).

Column merge (optimize/columns.py): a selected row keeps only the entries whose column has a
distinct index new_column[c] >= 0, renumbered, in storage order.

Transpose by row blocks, deterministic and without atomics: rows are cut into n_blocks contiguous
blocks; pass 1 counts each block's entries per column (counts[block, col], one row of the table
per block, so a block's counters stay together in cache); a scan of that table (column pointers,
then an exclusive scan over the blocks of each column) gives, for every (block, column), where the
block's entries of that column start in the transposed arrays; pass 2 lets each block walk its rows
in order and place its entries. Every transposed row (a column of D) therefore lists its entries
by increasing row.
"""


def csr_row_dot(indptr, indices, data, x, row, lane, n_lanes):
    """Partial sum of row ``row`` of a CSR matrix times x over the entries lane, lane + n_lanes, ..."""
    acc = 0.0
    for e in range(indptr[row] + lane, indptr[row + 1], n_lanes):
        acc += data[e] * x[indices[e]]
    return acc


def penalty_residual(d, ref_gy, kind):
    """The residual r whose square is the penalty; its derivative dr/dd is kind (or 1 for kind 0)."""
    if kind > 0:
        r = d - ref_gy
        return r if r > 0.0 else 0.0
    if kind < 0:
        r = ref_gy - d
        return r if r > 0.0 else 0.0
    return d - ref_gy


def penalty_value(d, ref_gy, kind, scale):
    r = penalty_residual(d, ref_gy, kind)
    return scale * r * r


def penalty_gradient(d, ref_gy, kind, scale):
    """d/dd of scale * r^2 = 2 scale r dr/dd."""
    r = penalty_residual(d, ref_gy, kind)
    sign = -1.0 if kind < 0 else 1.0
    return 2.0 * scale * r * sign


def merge_row_count(indptr, indices, row, new_column):
    """Entries of row ``row`` whose column is kept (new_column >= 0)."""
    c = 0
    for e in range(indptr[row], indptr[row + 1]):
        if new_column[indices[e]] >= 0:
            c += 1
    return c


def merge_row_fill(indptr, indices, data, row, new_column, out_start, out_indices, out_data):
    """Copy the kept entries of row ``row`` to out_* from out_start on, columns renumbered."""
    p = out_start
    for e in range(indptr[row], indptr[row + 1]):
        c = new_column[indices[e]]
        if c >= 0:
            out_indices[p] = c
            out_data[p] = data[e]
            p += 1


def block_rows(n_rows, n_blocks, block):
    """First and end row of block ``block`` when n_rows rows are cut into n_blocks contiguous blocks."""
    per = (n_rows + n_blocks - 1) // n_blocks
    lo = block * per
    hi = lo + per
    if lo > n_rows:
        lo = n_rows
    if hi > n_rows:
        hi = n_rows
    return lo, hi


def transpose_count_block(indptr, indices, n_blocks, block, counts):
    """counts[block, col] += the entries of column col in this block's rows (only this block writes)."""
    lo, hi = block_rows(indptr.shape[0] - 1, n_blocks, block)
    for i in range(lo, hi):
        for e in range(indptr[i], indptr[i + 1]):
            counts[block, indices[e]] += 1


def transpose_fill_block(indptr, indices, data, n_blocks, block, starts, out_indices, out_data):
    """Place this block's entries at starts[block, col], advancing it (only this block touches its row)."""
    lo, hi = block_rows(indptr.shape[0] - 1, n_blocks, block)
    for i in range(lo, hi):
        for e in range(indptr[i], indptr[i + 1]):
            c = indices[e]
            p = starts[block, c]
            out_indices[p] = i
            out_data[p] = data[e]
            starts[block, c] = p + 1
