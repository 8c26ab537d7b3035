#!/usr/bin/env bash
# The transfer experiment on real Common Voice: Mandarin (zh-CN) CER against 1, 10, 50 and
# 100 hours of Mandarin, with and without 100 h each of German, French, Spanish and Italian.
#
# Usage:
#     scripts/commonvoice_recipe.sh CV_ROOT [DEVICE] [extra `asr experiment` flags...]
#
#     CV_ROOT  the unpacked release: CV_ROOT/<locale>/{clips/,train.tsv,dev.tsv,test.tsv,
#              validated.tsv}, e.g. corpora/cv-corpus-17.0-2024-03-15
#     DEVICE   cuda (default) or cpu
#   e.g.
#     scripts/commonvoice_recipe.sh corpora/cv-corpus-17.0-2024-03-15 cuda
#     scripts/commonvoice_recipe.sh corpora/cv-corpus-17.0-2024-03-15 cuda --set grid.seeds=[0]
#
# Step 0, by hand (Common Voice asks for an e-mail address and acceptance of its terms, so no
# script downloads it): from https://commonvoice.mozilla.org/datasets pick one release (any
# recent "Common Voice Corpus N.0"; all five languages from the SAME release) and download the
# five archives, named like
#     cv-corpus-<N.0-DATE>-de.tar.gz   cv-corpus-<N.0-DATE>-fr.tar.gz   cv-corpus-<N.0-DATE>-es.tar.gz
#     cv-corpus-<N.0-DATE>-it.tar.gz   cv-corpus-<N.0-DATE>-zh-CN.tar.gz
# (from a few to tens of GB each in recent releases). Unpack them into one folder:
#     for f in cv-corpus-*-{de,fr,es,it,zh-CN}.tar.gz; do tar -xzf "$f" -C corpora; done
# which gives corpora/cv-corpus-<N.0-DATE>/<locale>/...
#
# What this script then does:
#   1. `asr prepare --no-features` on the release: manifests only, to print how many hours
#      each language offers (zh-CN must offer ~100 h of validated speech for the last point;
#      with fewer, the experiment warns and that point uses the whole pool);
#   2. `asr experiment --config transfer_commonvoice` (asr/configs/experiments/): data per
#      hours point, the helpers' pretraining, every strategy x hours x seed, report in
#      exp/transfer_commonvoice/results.md and cer_vs_hours.png. Finished runs are skipped, so
#      rerunning the script after an interruption continues where it stopped.
#
# Several GPUs: the experiment trains one run at a time on one device. To use k GPUs, run
# step 1 and `asr experiment ... --report-only` once (it prepares all data and trains
# nothing), then one process per seed, each on its own GPU:
#     CUDA_VISIBLE_DEVICES=0 scripts/commonvoice_recipe.sh CV_ROOT cuda --set grid.seeds=[0] &
#     CUDA_VISIBLE_DEVICES=1 scripts/commonvoice_recipe.sh CV_ROOT cuda --set grid.seeds=[1] &
# and finally `asr experiment --config transfer_commonvoice --set corpus.root=CV_ROOT
# --report-only` for the report over all seeds.
#
# Disk: features take ~58 MB per hour of audio; 400 h of helpers plus 161 h of Mandarin
# points per seed come to ~35 GB for two seeds, besides the release itself.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi
CV_ROOT=$1
DEVICE=${2:-cuda}
shift $(( $# >= 2 ? 2 : 1 ))
ASR=${ASR:-asr}
LOCALES=de,fr,es,it,zh-CN

for loc in ${LOCALES//,/ }; do
    if [[ ! -f "$CV_ROOT/$loc/validated.tsv" ]]; then
        echo "error: $CV_ROOT/$loc/validated.tsv not found: unpack the $loc archive of the" \
             "release into $(dirname "$CV_ROOT") first (see the Usage block: $0 --help)" >&2
        exit 2
    fi
done

echo "== 1. what the release offers (manifests only, no features)"
"$ASR" prepare --cv-root "$CV_ROOT" --locales "$LOCALES" --out data/commonvoice-check \
    --train-source validated --no-features

echo "== 2. the transfer experiment"
"$ASR" experiment --config transfer_commonvoice --set "corpus.root=$CV_ROOT" \
    --device "$DEVICE" --no-progress "$@"
