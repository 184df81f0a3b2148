package io.pagedkv;

/**
 * A {@link Batch} was used after one of its sequences changed (a commit, including the batch's own
 * {@link Batch#commit()}, an append, a truncate or a release). The call changed nothing: a stale
 * batch can never write K/V into pages its sequences no longer own, nor commit positions it did not
 * cover. Close the batch and build a new one for the sequences' current state.
 */
public final class StaleBatchException extends PagedKvException {
    private static final long serialVersionUID = 1L;

    StaleBatchException(int status, String message) {
        super(status, message);
    }
}
