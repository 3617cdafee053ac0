#!/bin/sh
# Regenerates the independent-writer fixtures of the sources tests, from the
# repository root: a WebDataset shard written by GNU tar and a Hugging Face
# `datasets`-layout Parquet (image: struct<bytes BLOB, path VARCHAR>) written
# by DuckDB (the sinks tests' node module: cd sinks/testdata/duckdb && npm ci).
set -eu
odd=stages/testdata/odd
tmp=$(mktemp -d)
cp $odd/quadrants.png $tmp/000000.png
echo '{"caption": "quadrants"}' > $tmp/000000.json
cp $odd/quadrants.jpg $tmp/000001.jpg
echo '{"caption": "quadrants, jpeg"}' > $tmp/000001.json
cp $odd/truncated.jpg $tmp/000002.jpg
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=2024-01-01 -cf sources/testdata/wds-gnutar.tar -C $tmp .
rm -r $tmp
node sinks/testdata/duckdb/query.mjs "COPY (SELECT {'bytes': content, 'path': parse_filename(filename)} AS image, row_number() OVER (ORDER BY filename) - 1 AS label FROM read_blob('$odd/quadrants.*') UNION ALL SELECT NULL::STRUCT(bytes BLOB, path VARCHAR), 99 ORDER BY label) TO 'sources/testdata/hf-duckdb.parquet' (FORMAT parquet, ROW_GROUP_SIZE 2)"
# img2dataset-files/ and img2dataset-parquet/ are kept as found, not
# regenerated: the two layouts img2dataset writes (output_format "files": per
# image a .jpg, a caption .txt and a .json, plus a metadata Parquet and a
# stats file per shard; "parquet": columns key, caption, jpg, status).
