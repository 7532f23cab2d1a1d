# The slug's JRE first; JAVA_OPTS sized to the dyno's memory unless the app sets them.
export JAVA_HOME="$HOME/.jdk"
export PATH="$HOME/.jdk/bin:$PATH"
if [ -z "${JAVA_OPTS:-}" ]; then
  mb=${MEMORY_AVAILABLE:-}
  if [ -z "$mb" ]; then
    for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
      [ -r "$f" ] || continue
      v=$(cat "$f")
      case "$v" in '' | max | *[!0-9]*) ;; *) [ "$v" -lt 1099511627776 ] && mb=$((v / 1048576)) ;; esac
      break
    done
  fi
  JAVA_OPTS="-Dfile.encoding=UTF-8"
  if [ -n "$mb" ] && [ "$mb" -gt 0 ]; then
    # Heroku-like: the heap leaves room for metaspace, threads and the JIT; small dynos use the serial GC.
    if [ "$mb" -le 1024 ]; then
      JAVA_OPTS="-Xmx$((mb * 60 / 100))m -Xss512k -XX:CICompilerCount=2 -XX:+UseSerialGC $JAVA_OPTS"
    else
      JAVA_OPTS="-Xmx$((mb * 75 / 100))m -Xss512k $JAVA_OPTS"
    fi
  fi
  export JAVA_OPTS
  unset mb v f
fi
