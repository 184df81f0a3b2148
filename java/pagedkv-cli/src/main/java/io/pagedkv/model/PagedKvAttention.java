package io.pagedkv.model;

import io.pagedkv.AttentionParams;
import io.pagedkv.Batch;
import io.pagedkv.DeviceMemory;
import io.pagedkv.Kernels;
import io.pagedkv.KvDtype;
import io.pagedkv.PagedKvCache;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * A model's attention over pagedkv: for each layer of a step it writes the new tokens' K and V
 * into their pages ({@code writeKv}) and runs one of the cache's attention kernels over every
 * cached position plus the new ones. On a CUDA cache q, k and v are moved to device buffers and
 * the output back; on the CPU the kernels read native host buffers directly. Buffers grow with
 * the largest step and are reused.
 *
 * <p>A bound batch serves one step: {@link #bind} it after building it, {@link #unbind()} before
 * committing it (a committed batch is stale, and the sequences change right after);
 * {@link #forward(Model, Batch, Kernel, int[], int[], int[])} does both around one pass.
 *
 * <p>Confined to the thread that created it.
 */
public final class PagedKvAttention implements Attention, AutoCloseable {
    /** Which kernel a step uses. */
    public enum Kernel {
        /** One query per sequence. */
        DECODE,
        /** Many queries per sequence, causal over the cached prefix and the new tokens. */
        PREFILL,
        /** The batch's shared prefix pages read once for all queries, merged through the LSE. */
        CASCADE
    }

    private static final long FLOAT = Float.BYTES;

    private final PagedKvCache cache;
    private final Kernels kernels;
    private final AttentionParams params; // threads 0: the kernels choose
    private final int qDim;
    private final int kvDim;
    private final boolean onDevice;
    private final Arena arena = Arena.ofConfined();
    private final List<DeviceMemory> deviceBuffers = new ArrayList<>();
    private int capacity; // tokens
    private MemorySegment hostQ, hostK, hostV, hostOut;
    private DeviceMemory devQ, devK, devV, devOut;
    private Batch batch;
    private Kernel kernel;
    private final long[] kernelCalls = new long[Kernel.values().length];

    /** Attention for a model of {@code heads} query heads over a cache of its KV heads and head size. */
    public PagedKvAttention(PagedKvCache cache, int heads) {
        this.cache = cache;
        this.kernels = cache.kernels();
        this.params = AttentionParams.of(heads);
        this.qDim = heads * cache.layout().headDim();
        this.kvDim = cache.layout().kvHeads() * cache.layout().headDim();
        this.onDevice = cache.layout().device().isCuda();
    }

    /** Sets the batch and kernel of the next forward pass. */
    public void bind(Batch stepBatch, Kernel stepKernel) {
        this.batch = stepBatch;
        this.kernel = stepKernel;
    }

    /** Forgets the step's batch, so that a later forward pass without {@link #bind} fails loudly. */
    public void unbind() {
        this.batch = null;
        this.kernel = null;
    }

    /**
     * One forward pass of {@code model} over {@code stepBatch} with {@code stepKernel}: binds the
     * batch, runs the pass and unbinds even when it fails, so the caller can commit or close the
     * batch right after.
     */
    public float[][] forward(Model model, Batch stepBatch, Kernel stepKernel, int[] tokens, int[] positions,
                             int[] logitRows) {
        bind(stepBatch, stepKernel);
        try {
            return model.forward(tokens, positions, logitRows, this);
        } finally {
            unbind();
        }
    }

    /** How many layer calls each kernel served (for reports and tests). */
    public long calls(Kernel k) {
        return kernelCalls[k.ordinal()];
    }

    @Override
    public void attend(int layer, int numTokens, float[][] q, float[][] k, float[][] v, float[][] out) {
        if (batch == null) throw new IllegalStateException("no batch bound");
        ensureCapacity(numTokens);
        long qBytes = numTokens * qDim * FLOAT;
        long kvBytes = numTokens * kvDim * FLOAT;
        for (int t = 0; t < numTokens; t++) {
            MemorySegment.copy(q[t], 0, hostQ, ValueLayout.JAVA_FLOAT, t * qDim * FLOAT, qDim);
            MemorySegment.copy(k[t], 0, hostK, ValueLayout.JAVA_FLOAT, t * kvDim * FLOAT, kvDim);
            MemorySegment.copy(v[t], 0, hostV, ValueLayout.JAVA_FLOAT, t * kvDim * FLOAT, kvDim);
        }
        MemorySegment qIn = hostQ, kIn = hostK, vIn = hostV, outBuf = hostOut;
        if (onDevice) {
            devQ.copyFromHost(hostQ, qBytes);
            devK.copyFromHost(hostK, kvBytes);
            devV.copyFromHost(hostV, kvBytes);
            qIn = devQ.segment();
            kIn = devK.segment();
            vIn = devV.segment();
            outBuf = devOut.segment();
        }
        kernels.writeKv(batch, layer, kIn, vIn, KvDtype.F32);
        switch (kernel) {
            case DECODE -> kernels.decodeAttention(batch, layer, params, qIn, outBuf, null);
            case PREFILL -> kernels.prefillAttention(batch, layer, params, qIn, outBuf, null);
            case CASCADE -> kernels.cascadeAttention(batch, layer, params, qIn, outBuf, null);
        }
        kernelCalls[kernel.ordinal()]++;
        if (onDevice) devOut.copyToHost(hostOut, qBytes);
        for (int t = 0; t < numTokens; t++) {
            MemorySegment.copy(hostOut, ValueLayout.JAVA_FLOAT, t * qDim * FLOAT, out[t], 0, qDim);
        }
    }

    private void ensureCapacity(int tokens) {
        if (tokens <= capacity) return;
        int grown = Math.max(tokens, Math.max(16, capacity * 2));
        hostQ = arena.allocate(grown * qDim * FLOAT, 64);
        hostK = arena.allocate(grown * kvDim * FLOAT, 64);
        hostV = arena.allocate(grown * kvDim * FLOAT, 64);
        hostOut = arena.allocate(grown * qDim * FLOAT, 64);
        if (onDevice) {
            freeDeviceBuffers();
            devQ = deviceBuffer(grown * qDim * FLOAT);
            devK = deviceBuffer(grown * kvDim * FLOAT);
            devV = deviceBuffer(grown * kvDim * FLOAT);
            devOut = deviceBuffer(grown * qDim * FLOAT);
        }
        capacity = grown;
    }

    private DeviceMemory deviceBuffer(long bytes) {
        DeviceMemory buffer = cache.allocateDevice(bytes);
        deviceBuffers.add(buffer);
        return buffer;
    }

    private void freeDeviceBuffers() {
        for (DeviceMemory buffer : deviceBuffers) buffer.close();
        deviceBuffers.clear();
    }

    @Override
    public void close() {
        try {
            freeDeviceBuffers(); // nothing to free once the cache is closed: it freed them
        } finally {
            arena.close();
        }
    }
}
