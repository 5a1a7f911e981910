import type { FeedState } from '@navaro/client';

const LABELS: Record<FeedState['status'], string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reloading: 'Loading…',
  reconnecting: 'Reconnecting…',
  stopped: 'Offline',
};

/** The live feed's state, in words and colour, announced when it changes. */
export function ConnectionBadge({ state }: { state: FeedState }) {
  const detail =
    state.status === 'reconnecting'
      ? `retrying in ${Math.max(1, Math.round(state.retryInMs / 1000))} s`
      : state.status === 'live'
        ? 'updates arrive as they happen'
        : state.status === 'stopped'
          ? state.reason.replace('_', ' ')
          : '';
  return (
    <div className={`connection ${state.status}`} data-testid="connection" data-status={state.status} role="status">
      <span className="dot" aria-hidden="true" />
      <span className="label">{LABELS[state.status]}</span>
      {detail && <span className="detail">{detail}</span>}
    </div>
  );
}
