// Move to another view: the app re-renders on popstate, so pushState + popstate is a navigation.
export function navigate(href) {
  history.pushState(null, '', href);
  window.dispatchEvent(new PopStateEvent('popstate'));
}
