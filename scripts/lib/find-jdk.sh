# Sourced by the scripts: find_jdk prints the home of a JDK >= 22 — $JAVA_HOME when it is one,
# else the newest under /usr/lib/jvm — or returns 1 and prints nothing.
readonly PAGEDKV_MIN_JAVA=22

# Major version of the JDK at $1 (its `release` file, else `java -version`), or nothing.
java_major() {
    local home="$1" version=""
    [[ -x "$home/bin/java" ]] || return 0
    if [[ -f "$home/release" ]]; then
        version="$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$home/release")"
    fi
    if [[ -z "$version" ]]; then
        version="$("$home/bin/java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    fi
    version="${version#1.}" # 1.8 -> 8
    echo "${version%%[.+-]*}"
}

find_jdk() {
    local major
    if [[ -n "${JAVA_HOME:-}" ]]; then
        major="$(java_major "$JAVA_HOME")"
        if [[ -n "$major" && "$major" -ge $PAGEDKV_MIN_JAVA ]]; then
            echo "$JAVA_HOME"
            return 0
        fi
    fi
    local best="" best_major=0 dir
    for dir in /usr/lib/jvm/*; do
        [[ -d "$dir" && ! -L "$dir" ]] || continue
        major="$(java_major "$dir")"
        if [[ -n "$major" && "$major" -ge $PAGEDKV_MIN_JAVA && "$major" -gt $best_major ]]; then
            best="$dir"
            best_major="$major"
        fi
    done
    [[ -n "$best" ]] || return 1
    echo "$best"
}
