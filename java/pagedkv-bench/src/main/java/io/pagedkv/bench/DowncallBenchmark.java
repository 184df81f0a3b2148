package io.pagedkv.bench;

import io.pagedkv.PagedKvCache;
import io.pagedkv.internal.NativeLibrary;
import io.pagedkv.internal.ffi.PagedKvNative;
import java.lang.foreign.Linker;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.CompilerControl;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The cost of one call through the C ABI: {@code pagedkv_noop} through the jextract bindings,
 * next to a Java call that does nothing (the floor), in the same run. The difference is the FFM
 * downcall overhead (design target: tens of nanoseconds). The critical variant skips the
 * thread-state transition, showing what that transition costs.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Thread)
public class DowncallBenchmark {
    static {
        NativeLibrary.ensureLoaded();
    }

    @SuppressWarnings("restricted") // a downcall handle of its own is what this benchmark measures
    private static final MethodHandle NOOP_CRITICAL = Linker.nativeLinker().downcallHandle(
            PagedKvNative.pagedkv_noop$address(), PagedKvNative.pagedkv_noop$descriptor(), Linker.Option.critical(false));

    /** pagedkv_noop through the generated binding. */
    @Benchmark
    public int nativeNoop() {
        return PagedKvNative.pagedkv_noop();
    }

    /** pagedkv_noop through a critical downcall handle (no thread-state transition). */
    @Benchmark
    public int nativeNoopCritical() throws Throwable {
        return (int) NOOP_CRITICAL.invokeExact();
    }

    /** pagedkv_version through the public API. */
    @Benchmark
    public int publicVersion() {
        return PagedKvCache.version();
    }

    /** A Java method that does nothing, not inlined: the floor the downcalls are compared with. */
    @Benchmark
    public int javaNoop() {
        return javaNothing();
    }

    /** The harness alone: one blackhole consume. */
    @Benchmark
    public void blackhole(Blackhole blackhole) {
        blackhole.consume(0);
    }

    @CompilerControl(CompilerControl.Mode.DONT_INLINE)
    private static int javaNothing() {
        return 0;
    }
}
