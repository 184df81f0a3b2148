package io.pagedkv.cli;

import com.fasterxml.jackson.core.JsonGenerator;
import io.pagedkv.PagedKvCache;
import io.pagedkv.Tier;
import io.pagedkv.TierStats;
import io.pagedkv.replay.JsonLines;
import io.pagedkv.replay.Replay;
import io.pagedkv.replay.RequestResult;
import io.pagedkv.replay.RunResult;
import io.pagedkv.replay.TokenScorer;
import io.pagedkv.replay.Verifier;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/** Writes a replay report as a table (people) or as JSON lines (programs). */
final class ReportPrinter {
    private final PrintStream out;

    ReportPrinter(PrintStream out) {
        this.out = out;
    }

    // ---- text ---------------------------------------------------------------------------------------

    /** What is about to run (printed before the work): workload, model, cache, batch and sampling. */
    static void header(PrintStream to, String workload, int requests, Replay.Options o) {
        to.printf("pagedkv %s replay: %s, %d request%s%n", PagedKvCache.versionString(), workload,
                requests, requests == 1 ? "" : "s");
        to.println("model: " + o.model().describe());
        to.println("cache: " + o.cache().describe(o.model()) + "; batch " + o.batch() + "; " + o.sampling().describe());
        if (o.cache().tiers().any()) to.println("tiers below the pool (run with reuse): " + o.cache().tiers().describe());
        to.println();
        to.flush();
    }

    /** The report's tables, after {@link #header}. */
    void text(Replay.Report report) {
        RunResult primary = report.primary();
        if (report.reuse() == null) out.println("(reuse off)");
        requestTable(primary);
        out.println();
        summaryTable(report);
        if (report.fcfs() != null || report.events() != null) {
            out.println();
            scheduleAndEvents(report);
        }
        if (report.verify() != null) {
            out.println();
            out.println("verify: " + verifySentence(report.verify()) + (report.verify().ok() ? ": OK" : ": FAILED"));
        }
        if (report.score() != null) {
            out.println();
            out.println("score: " + scoreSentence(report.score()));
        }
    }

    private void requestTable(RunResult run) {
        int idWidth = "request".length();
        for (RequestResult r : run.requests()) idWidth = Math.max(idWidth, r.request().id().length());
        idWidth = Math.min(idWidth, 32);
        String header = "%-" + idWidth + "s  %7s  %7s  %5s  %8s  %9s  %8s%n";
        out.printf(header, "request", "prompt", "reused", "hit", "computed", "generated", "ttft ms");
        for (RequestResult r : run.requests()) {
            String id = r.request().id();
            if (id.length() > idWidth) id = id.substring(0, idWidth - 1) + "~";
            out.printf(Locale.ROOT, "%-" + idWidth + "s  %7d  %7d  %5s  %8d  %9d  %8.1f%n", id, r.promptTokens(),
                    r.cachedTokens(), String.format(Locale.ROOT, "%.0f%%", 100.0 * r.cachedTokens() / r.promptTokens()),
                    r.computedTokens(), r.generated().length, r.ttftNanos() / 1e6);
        }
    }

    private void summaryTable(Replay.Report report) {
        List<RunResult> runs = new ArrayList<>();
        List<String> names = new ArrayList<>();
        if (report.reuse() != null) {
            runs.add(report.reuse());
            names.add(report.fcfs() != null ? "on, lpm" : "reuse on");
        }
        if (report.fcfs() != null) {
            runs.add(report.fcfs());
            names.add("on, fcfs");
        }
        if (report.noReuse() != null) {
            runs.add(report.noReuse());
            names.add("reuse off");
        }
        String label = "%-30s";
        StringBuilder head = new StringBuilder(String.format(label, ""));
        for (String n : names) head.append(String.format("%14s", n));
        out.println(head);
        row(runs, "prompt tokens", r -> Long.toString(r.promptTokens()));
        row(runs, "reused (hit rate)", r -> String.format(Locale.ROOT, "%d (%.1f%%)", r.cachedTokens(), 100 * r.hitRate()));
        row(runs, "prefill tokens computed", r -> Long.toString(r.computedTokens()));
        if (report.reuse() != null && report.noReuse() != null) {
            row(runs, "prefill tokens saved", r -> Long.toString(report.noReuse().computedTokens() - r.computedTokens()));
        }
        row(runs, "generated tokens", r -> Long.toString(r.generatedTokens()));
        row(runs, "pages in use (peak)", r -> Integer.toString(r.peakPagesInUse()));
        row(runs, "pages cached at the end", r -> Integer.toString(r.stats().pagesCached()));
        row(runs, "partial-page copies", r -> Long.toString(r.stats().cowCopies()));
        row(runs, "evictions", r -> Long.toString(r.stats().evictions()));
        for (Tier tier : Tier.values()) {
            if (runs.stream().noneMatch(r -> r.tiers().containsKey(tier))) continue;
            row(runs, "  loaded from " + tier.label() + " tier", r -> r.tiers().containsKey(tier)
                    ? r.loadedTokens(tier) + " (" + r.tiers().get(tier).errors() + " err)" : "-");
        }
        if (report.options().batch() > 1) {
            row(runs, "steps (cascade)", r -> r.steps() + " (" + r.cascadeSteps() + ")");
        }
        row(runs, "time to first token, mean", r -> String.format(Locale.ROOT, "%.1f ms", r.meanTtftMillis()));
        row(runs, "  from arrival (queue incl.)", r -> String.format(Locale.ROOT, "%.1f ms", r.meanLatencyMillis()));
        if (report.fcfs() != null) {
            row(runs, "most passed over (aging)", r -> Integer.toString(r.maxBypassed()));
        }
        row(runs, "prefill time", r -> String.format(Locale.ROOT, "%.3f s", r.prefillNanos() / 1e9));
        row(runs, "decode tokens/s", r -> String.format(Locale.ROOT, "%.0f", r.decodeTokensPerSecond()));
        row(runs, "wall time", r -> String.format(Locale.ROOT, "%.3f s", r.wallNanos() / 1e9));
        if (report.reuse() != null && report.noReuse() != null) {
            RunResult on = report.reuse();
            RunResult off = report.noReuse();
            out.println();
            out.printf(Locale.ROOT, "speed-up with reuse: time to first token %.2fx, prefill %.2fx, wall time %.2fx%n",
                    ratio(off.meanTtftMillis(), on.meanTtftMillis()), ratio(off.prefillNanos(), on.prefillNanos()),
                    ratio(off.wallNanos(), on.wallNanos()));
            out.println("same tokens generated with and without reuse: "
                    + (Boolean.TRUE.equals(report.outputsMatch()) ? "yes" : "no (near-tie logits can flip a choice; --verify compares logits)"));
        }
    }

    private void scheduleAndEvents(Replay.Report report) {
        if (report.fcfs() != null && report.reuse() != null) {
            RunResult lpm = report.reuse();
            RunResult fcfs = report.fcfs();
            out.printf(Locale.ROOT,
                    "lpm vs fcfs (both with reuse): %d prefill tokens computed vs %d (%+d saved), mean time to first"
                            + " token from arrival %.1f ms vs %.1f ms (%.2fx), wall time %.2fx; aging bound %d%n",
                    lpm.computedTokens(), fcfs.computedTokens(), fcfs.computedTokens() - lpm.computedTokens(),
                    lpm.meanLatencyMillis(), fcfs.meanLatencyMillis(), ratio(fcfs.meanLatencyMillis(), lpm.meanLatencyMillis()),
                    ratio(fcfs.wallNanos(), lpm.wallNanos()), report.options().agingBound());
        }
        if (report.events() != null) {
            var e = report.events();
            Replay.KvEventsOptions k = report.options().kvEvents();
            out.printf(Locale.ROOT, "kv events on %s%s (topic %s): %d events in %d batches, %d sent, %d dropped, %d replay requests%n",
                    k.endpoint(), k.replayEndpoint() == null ? "" : ", replay " + k.replayEndpoint(), k.topic(),
                    e.eventsAccepted(), e.batchesAccepted(), e.batchesSent(), e.batchesDropped(), e.replayRequests());
        }
    }

    private void row(List<RunResult> runs, String label, Function<RunResult, String> cell) {
        StringBuilder sb = new StringBuilder(String.format("%-30s", label));
        for (RunResult r : runs) sb.append(String.format("%14s", cell.apply(r)));
        out.println(sb);
    }

    static String verifySentence(Verifier.Result v) {
        String where = v.worstRequest() == null ? "" : " (request " + v.worstRequest() + ", generated token " + (v.worstIndex() + 1) + ")";
        return String.format(Locale.ROOT,
                "%d generated positions of %d requests recomputed from scratch without reuse; max |logit difference| %.3g%s, "
                        + "mean %.3g, top-1 agreement %.4f, tolerance %.3g",
                v.positions(), v.requests(), v.maxAbsDiff(), where, v.meanAbsDiff(), v.top1Agreement(), v.tolerance());
    }

    static String scoreSentence(TokenScorer.Result s) {
        return String.format(Locale.ROOT,
                "fixed stream of %d positions in %d requests (%d positions reused): mean NLL %.5f nats (f32 KV %.5f), "
                        + "max |logit difference| vs f32 KV %.3g, mean %.3g, top-1 agreement %.4f",
                s.positions(), TokenScorer.REQUESTS, s.reusedPositions(), s.meanNll(), s.meanNllF32(), s.maxAbsDiff(),
                s.meanAbsDiff(), s.top1Agreement());
    }

    private static double ratio(double slow, double fast) {
        return fast <= 0 ? Double.NaN : slow / fast;
    }

    // ---- JSON ---------------------------------------------------------------------------------------

    /** One object per request, then the summary object, one per line (Jackson's streaming writer). */
    void json(Replay.Report report) {
        RunResult primary = report.primary();
        for (RequestResult r : primary.requests()) {
            out.println(JsonLines.object(g -> {
                g.writeStringField("type", "request");
                g.writeStringField("id", r.request().id());
                g.writeNumberField("line", r.request().line());
                g.writeStringField("salt", r.request().salt());
                g.writeNumberField("prompt_tokens", r.promptTokens());
                g.writeNumberField("cached_tokens", r.cachedTokens());
                g.writeNumberField("computed_tokens", r.computedTokens());
                g.writeNumberField("generated_tokens", r.generated().length);
                g.writeObjectFieldStart("loaded_tokens");
                for (Tier tier : Tier.values()) g.writeNumberField(tier.label(), r.loadedTokens(tier));
                g.writeEndObject();
                JsonLines.number(g, "ttft_ms", r.ttftNanos() / 1e6);
                g.writeFieldName("output_tokens");
                g.writeArray(r.generated(), 0, r.generated().length);
            }));
        }
        out.println(JsonLines.object(g -> summary(g, report)));
    }

    private static void summary(JsonGenerator g, Replay.Report report) throws IOException {
        Replay.Options o = report.options();
        RunResult primary = report.primary();
        g.writeStringField("type", "summary");
        g.writeStringField("workload", report.workload());
        g.writeStringField("model", o.model().describe());
        g.writeNumberField("requests", primary.requests().size());
        g.writeBooleanField("reuse", report.reuse() != null);
        runFields(g, primary);
        JsonLines.number(g, "kv_bytes_per_token", primary.stats().kvBytesPerToken());
        if (report.verify() != null) {
            JsonLines.number(g, "max_logit_diff", report.verify().maxAbsDiff());
            JsonLines.number(g, "top1_agreement", report.verify().top1Agreement());
        }
        if (report.score() != null) {
            TokenScorer.Result s = report.score();
            g.writeObjectFieldStart("score");
            g.writeNumberField("positions", s.positions());
            g.writeNumberField("requests", TokenScorer.REQUESTS);
            g.writeNumberField("reused_positions", s.reusedPositions());
            JsonLines.number(g, "mean_nll", s.meanNll());
            JsonLines.number(g, "mean_nll_f32", s.meanNllF32());
            JsonLines.number(g, "max_logit_diff", s.maxAbsDiff());
            JsonLines.number(g, "mean_logit_diff", s.meanAbsDiff());
            JsonLines.number(g, "top1_agreement", s.top1Agreement());
            g.writeEndObject();
        }
        g.writeObjectFieldStart("config");
        g.writeNumberField("page_size", o.cache().pageSize());
        g.writeNumberField("pages", o.cache().pages());
        g.writeStringField("kv_dtype", o.cache().kvDtype().name().toLowerCase(Locale.ROOT));
        g.writeBooleanField("kv_hadamard", o.cache().hadamard());
        g.writeStringField("device", o.cache().device().toString());
        g.writeNumberField("batch", o.batch());
        g.writeStringField("sampling", o.sampling().describe());
        g.writeEndObject();
        if (report.reuse() != null && report.noReuse() != null) {
            RunResult on = report.reuse();
            RunResult off = report.noReuse();
            g.writeObjectFieldStart("no_reuse");
            runFields(g, off);
            g.writeEndObject();
            g.writeNumberField("prefill_tokens_saved", off.computedTokens() - on.computedTokens());
            JsonLines.number(g, "speedup_ttft", ratio(off.meanTtftMillis(), on.meanTtftMillis()));
            JsonLines.number(g, "speedup_prefill", ratio(off.prefillNanos(), on.prefillNanos()));
            JsonLines.number(g, "speedup_wall", ratio(off.wallNanos(), on.wallNanos()));
            g.writeBooleanField("outputs_match", Boolean.TRUE.equals(report.outputsMatch()));
        }
        g.writeObjectFieldStart("tiers");
        for (var entry : primary.tiers().entrySet()) {
            TierStats t = entry.getValue();
            g.writeObjectFieldStart(entry.getKey().label());
            g.writeNumberField("loaded_tokens", primary.loadedTokens(entry.getKey()));
            g.writeNumberField("pages", t.pages());
            g.writeNumberField("bytes", t.bytes());
            g.writeNumberField("capacity_bytes", t.capacityBytes());
            g.writeNumberField("hits", t.hits());
            g.writeNumberField("misses", t.misses());
            g.writeNumberField("verify_failures", t.verifyFailures());
            g.writeNumberField("loads", t.loads());
            g.writeNumberField("load_bytes", t.loadBytes());
            JsonLines.number(g, "load_ms", t.loadNanos() / 1e6);
            g.writeNumberField("stores", t.stores());
            g.writeNumberField("store_bytes", t.storeBytes());
            JsonLines.number(g, "store_ms", t.storeNanos() / 1e6);
            g.writeNumberField("dropped_stores", t.droppedStores());
            g.writeNumberField("evictions", t.evictions());
            g.writeNumberField("errors", t.errors());
            g.writeEndObject();
        }
        g.writeEndObject();
        g.writeStringField("schedule", primary.schedule().name().toLowerCase(Locale.ROOT));
        if (report.fcfs() != null) {
            g.writeObjectFieldStart("fcfs");
            runFields(g, report.fcfs());
            g.writeEndObject();
            g.writeNumberField("aging_bound", o.agingBound());
            g.writeNumberField("max_passed_over", primary.maxBypassed());
        }
        if (report.events() != null) {
            var e = report.events();
            g.writeObjectFieldStart("kv_events");
            g.writeStringField("endpoint", o.kvEvents().endpoint());
            g.writeStringField("topic", o.kvEvents().topic());
            g.writeNumberField("events", e.eventsAccepted());
            g.writeNumberField("batches", e.batchesAccepted());
            g.writeNumberField("sent", e.batchesSent());
            g.writeNumberField("dropped", e.batchesDropped());
            g.writeEndObject();
        }
        if (report.verify() != null) {
            Verifier.Result v = report.verify();
            g.writeObjectFieldStart("verify");
            g.writeBooleanField("ok", v.ok());
            g.writeNumberField("positions", v.positions());
            JsonLines.number(g, "max_abs_diff", v.maxAbsDiff());
            JsonLines.number(g, "tolerance", v.tolerance());
            JsonLines.number(g, "top1_agreement", v.top1Agreement());
            JsonLines.number(g, "mean_abs_diff", v.meanAbsDiff());
            g.writeStringField("worst_request", v.worstRequest());
            g.writeEndObject();
        }
    }

    private static void runFields(JsonGenerator g, RunResult r) throws IOException {
        g.writeNumberField("prompt_tokens", r.promptTokens());
        g.writeNumberField("cached_tokens", r.cachedTokens());
        g.writeNumberField("computed_tokens", r.computedTokens());
        g.writeNumberField("generated_tokens", r.generatedTokens());
        JsonLines.number(g, "hit_rate", r.hitRate());
        g.writeNumberField("pages_in_use_peak", r.peakPagesInUse());
        g.writeNumberField("pages_cached", r.stats().pagesCached());
        g.writeNumberField("partial_page_copies", r.stats().cowCopies());
        g.writeNumberField("evictions", r.stats().evictions());
        g.writeNumberField("steps", r.steps());
        g.writeNumberField("cascade_steps", r.cascadeSteps());
        g.writeNumberField("preemptions", r.preemptions());
        g.writeNumberField("deferrals", r.deferrals());
        JsonLines.number(g, "ttft_ms_mean", r.meanTtftMillis());
        JsonLines.number(g, "ttft_from_arrival_ms_mean", r.meanLatencyMillis());
        JsonLines.number(g, "prefill_s", r.prefillNanos() / 1e9);
        JsonLines.number(g, "decode_tokens_per_s", r.decodeTokensPerSecond());
        JsonLines.number(g, "wall_s", r.wallNanos() / 1e9);
    }
}
