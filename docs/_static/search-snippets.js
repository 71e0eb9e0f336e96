// Search results quote the page's article, not its sidebar: Sphinx takes each result's snippet from the
// element with role="main", which in this theme also holds the table of contents and the theme switcher,
// so a term found there first gave snippets like "Contents ... Light Dark".
(() => {
  if (typeof Search === "undefined" || !Search.htmlToText) return;
  Search.htmlToText = (htmlString, anchor) => {
    const doc = new DOMParser().parseFromString(htmlString, "text/html");
    doc.querySelectorAll(".headerlink, script, style, .bd-toc, .header-article, .prev-next-area, .api-link")
      .forEach((el) => el.remove());
    const article = doc.querySelector("article.bd-article") || doc.querySelector('[role="main"]');
    if (!article) return "";
    const target = anchor ? doc.getElementById(decodeURIComponent(anchor.replace(/^#/, ""))) : null;
    return (target || article).textContent.replace(/\s+/g, " ");
  };
})();
