#!/bin/sh
# Pin every image of an env file (.env, or .env.example when bumping) by digest: each `*_IMAGE=name:version` line
# becomes `*_IMAGE=name:version@sha256:<digest of that version's image index>`, as the registry says now.
# A line that already has a digest keeps it unless --refresh is given. VAKA_IMAGE (built here, not pulled) is left
# as it is. Needs Docker with buildx (`docker buildx imagetools inspect`) and the registry; changes nothing else.
#   deploy/pin-images.sh [--refresh] [ENV_FILE]       (docs/operations.md, "Pinned versions")
set -eu

refresh=false
if [ "${1:-}" = "--refresh" ]; then refresh=true; shift; fi
file=${1:-.env}
[ -f "$file" ] || { echo "pin-images: no file $file (copy .env.example to .env first)" >&2; exit 2; }

tmp=$(mktemp "$file.XXXXXX")
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
    VAKA_IMAGE=* | \#*) ;;
    *_IMAGE=*)
        name=${line%%=*}
        ref=${line#*=}
        tag=${ref%@*}
        if [ "$ref" = "$tag" ] || [ "$refresh" = true ]; then
            digest=$(docker buildx imagetools inspect "$tag" | awk '$1 == "Digest:" { print $2; exit }')
            case "$digest" in
            sha256:????????????????????????????????????????????????????????????????) ;;
            *) echo "pin-images: no digest for $tag (got '$digest')" >&2; exit 1 ;;
            esac
            line="$name=$tag@$digest"
            echo "pin-images: $line" >&2
        fi
        ;;
    esac
    printf '%s\n' "$line" >> "$tmp"
done < "$file"
cat "$tmp" > "$file"  # keeps the file's owner and mode
