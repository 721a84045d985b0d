/* replyd embed: shows the comments of <div id="replyd-thread" data-post="POST_ID"></div> in the
   blog's own page, with a form to comment and one to follow by email. No dependencies, no
   cookies, no requests but to the replyd server this script came from. Class names and CSS
   custom properties: see embed.css. */
(function () {
  "use strict";
  var script = document.currentScript;
  var root = document.getElementById("replyd-thread");
  if (!script || !root || !window.fetch) return;
  var base = script.src.replace(/\/embed\.js(?:[?#].*)?$/, "");
  var post = root.getAttribute("data-post") || "";
  var storeKey = "replyd:" + base;
  var idCount = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (attrs[name] !== null && attrs[name] !== false) node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }
  function uid(name) { idCount += 1; return "replyd-" + name + "-" + idCount; }
  function saved() {
    try { return JSON.parse(window.localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { return {}; }
  }
  function save(changes) {
    var value = saved();
    Object.keys(changes).forEach(function (k) {
      if (changes[k] === null) delete value[k]; else value[k] = changes[k];
    });
    try { window.localStorage.setItem(storeKey, JSON.stringify(value)); } catch (e) { /* storage off */ }
  }
  function randomKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }
  function call(method, path, body, key) {
    var headers = {};
    if (body) headers["Content-Type"] = "application/json";
    if (key) headers["Idempotency-Key"] = key;
    return fetch(base + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
      mode: "cors", credentials: "omit"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data, wait: response.headers.get("Retry-After") };
      });
    });
  }
  function linkify(text, into) {
    var url = /\bhttps?:\/\/[^\s<>"'`]+/gi, last = 0, match;
    while ((match = url.exec(text))) {
      var href = match[0].replace(/[.,;:!?)\]}'"]+$/, "");
      into.appendChild(document.createTextNode(text.slice(last, match.index)));
      into.appendChild(el("a", { href: href, rel: "nofollow ugc noopener noreferrer" }, [href]));
      last = match.index + href.length;
      url.lastIndex = last;
    }
    into.appendChild(document.createTextNode(text.slice(last)));
  }
  function when(iso) {
    try {
      return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    } catch (e) { return iso; }
  }
  var postPath = "/api/posts/" + encodeURIComponent(post);

  var section = el("section", { "class": "replyd", "aria-label": "Comments" });
  var count = el("h2", { "class": "replyd-count" }, ["Comments"]);
  var notice = el("p", { "class": "replyd-notice", role: "status", "aria-live": "polite" });
  var list = el("ol", { "class": "replyd-comments" });
  section.appendChild(count);
  section.appendChild(notice);
  section.appendChild(list);
  var replyTo = null;
  var commentForm;

  function showNotice(text) { notice.textContent = text; }

  function field(form, name, label, options) {
    var id = uid(name), wrap = el("p", { "class": "replyd-field" });
    wrap.appendChild(el("label", { "for": id }, [label]));
    var described = [];
    if (options.hint) {
      described.push(id + "-hint");
      wrap.appendChild(el("span", { "class": "replyd-hint", id: id + "-hint" }, [options.hint]));
    }
    var input;
    if (options.choices) {
      input = el("select", { id: id, name: name }, options.choices.map(function (c) {
        return el("option", { value: c[0] }, [c[1]]);
      }));
    } else {
      input = el(options.multiline ? "textarea" : "input", {
        id: id, name: name, type: options.multiline ? null : (options.type || "text"),
        required: options.required ? "" : null, autocomplete: options.autocomplete || null,
        maxlength: options.max || null, rows: options.multiline ? "5" : null
      });
    }
    if (described.length) input.setAttribute("aria-describedby", described.join(" "));
    wrap.appendChild(input);
    wrap.appendChild(el("span", { "class": "replyd-field-error", id: id + "-error" }));
    form.appendChild(wrap);
    form.elements_[name] = input;
    return input;
  }
  function honeypot(form) {
    var id = uid("website");
    form.appendChild(el("p", { "class": "replyd-hp", "aria-hidden": "true" }, [
      el("label", { "for": id }, ["Leave this empty"]),
      el("input", { id: id, name: "website", tabindex: "-1", autocomplete: "off" })
    ]));
  }
  function makeForm(kind, title) {
    var heading = el("h3", { id: uid(kind + "-title") }, [title]);
    var form = el("form", { "class": "replyd-form replyd-" + kind + "-form", "aria-labelledby": heading.id, novalidate: "" });
    form.appendChild(heading);
    form.elements_ = {};
    form.error = el("p", { "class": "replyd-error", role: "alert" });
    return form;
  }
  function clearErrors(form) {
    form.error.textContent = "";
    Object.keys(form.elements_).forEach(function (name) {
      var input = form.elements_[name];
      input.removeAttribute("aria-invalid");
      var message = document.getElementById(input.id + "-error");
      message.textContent = "";
      var ids = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (x) {
        return x && x !== message.id;
      });
      if (ids.length) input.setAttribute("aria-describedby", ids.join(" ")); else input.removeAttribute("aria-describedby");
    });
  }
  function showError(form, result) {
    var text = (result.data && result.data.error) || "Something went wrong; please try again.";
    if (result.status === 429 && result.wait) text += " (wait " + result.wait + " seconds)";
    var split = text.indexOf(": "), name = text.slice(0, split), input = form.elements_[name];
    if (split > 0 && input) {
      var message = document.getElementById(input.id + "-error");
      message.textContent = text.slice(split + 2);
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", ((input.getAttribute("aria-describedby") || "") + " " + message.id).trim());
      form.error.textContent = "Please check the form: " + text.slice(split + 2) + ".";
      input.focus();
    } else {
      form.error.textContent = text;
    }
  }
  function submitter(form, label, send) {
    var button = el("button", { type: "submit", "class": "replyd-submit" }, [label]);
    form.appendChild(form.error);
    form.appendChild(el("p", {}, [button]));
    var key = null, busy = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) return;  // a double click sends once
      busy = true;
      button.disabled = true;
      clearErrors(form);
      key = key || randomKey();
      send(key).then(function (result) {
        key = null;  // answered: the next request is a new one
        if (result.status >= 400) showError(form, result);
      }, function () {
        // No answer: a retry keeps the key, so the server makes one comment of both.
        form.error.textContent = "Could not reach the comment server; please send again.";
      }).then(function () { busy = false; button.disabled = false; });
    });
  }

  function buildCommentForm() {
    var form = makeForm("comment", "Leave a comment");
    var replying = el("p", { "class": "replyd-replying", hidden: "" });
    form.appendChild(replying);
    var me = saved();
    var name = field(form, "author_name", "Name", { hint: "Shown with your comment.", autocomplete: "name", max: "200" });
    var email = field(form, "author_email", "Email", {
      hint: "Never shown. We send you a link to confirm the comment.", type: "email",
      required: true, autocomplete: "email", max: "320"
    });
    var body = field(form, "body", "Comment", { multiline: true, required: true });
    var follow = field(form, "follow", "Email me new comments", { choices: [
      ["each", "for each new comment"], ["daily", "in a daily digest"],
      ["weekly", "in a weekly digest"], ["none", "no, thanks"]
    ] });
    name.value = me.name || "";
    email.value = me.email || "";
    honeypot(form);
    form.replyTo = function (comment) {
      replyTo = comment;
      replying.hidden = !comment;
      replying.textContent = "";
      if (!comment) return;
      var cancel = el("button", { type: "button", "class": "replyd-cancel" }, ["Cancel"]);
      cancel.addEventListener("click", function () { form.replyTo(null); });
      replying.appendChild(document.createTextNode("Replying to " + comment.author_name + " "));
      replying.appendChild(cancel);
      body.focus();
    };
    submitter(form, "Send comment", function (key) {
      var address = email.value.trim().toLowerCase(), me = saved();
      var request = {
        author_name: name.value, author_email: address, body: body.value, follow: follow.value,
        website: form.querySelector("[name=website]").value
      };
      if (replyTo) request.parent_id = replyTo.id;
      if (me.token && me.email === address) request.author_token = me.token;
      save({ name: name.value.trim(), email: address });
      return call("POST", postPath + "/comments", request, key).then(function (result) {
        if (result.status === 201) {
          body.value = "";
          form.replyTo(null);
          showNotice("Your comment is published.");
          load(result.data.id);
        } else if (result.status === 202) {
          body.value = "";
          form.replyTo(null);
          if (request.author_token) save({ token: null });  // expired: a new mail confirms again
          showNotice(result.data.message);
        }
        return result;
      });
    });
    return form;
  }

  function buildFollowForm() {
    var form = makeForm("follow", "Follow by email");
    var email = field(form, "email", "Email", {
      hint: "We send you a link to confirm.", type: "email", required: true, autocomplete: "email", max: "320"
    });
    var scope = field(form, "scope", "Follow", { choices: [
      ["post", "new comments on this post"], ["all", "every new post on this blog"]
    ] });
    var digest = field(form, "digest", "How often", { choices: [
      ["", "an email for each one"], ["daily", "a daily digest"], ["weekly", "a weekly digest"]
    ] });
    email.value = saved().email || "";
    honeypot(form);
    submitter(form, "Follow", function () {
      var request = {
        email: email.value.trim().toLowerCase(), digest: digest.value || null, scope: scope.value,
        website: form.querySelector("[name=website]").value
      };
      return call("POST", postPath + "/follow", request).then(function (result) {
        if (result.status === 202) showNotice(result.data.message);
        return result;
      });
    });
    return form;
  }

  function render(comments, closed, focusId) {
    var names = {};
    comments.forEach(function (c) { names[c.id] = c.author_name || "A reader"; });
    count.textContent = comments.length === 1 ? "1 comment" : comments.length + " comments";
    list.textContent = "";
    comments.forEach(function (c) {
      var author = names[c.id], by = uid("by");
      var meta = el("header", { "class": "replyd-meta" }, [el("span", { "class": "replyd-author", id: by }, [author])]);
      if (c.parent_id && names[c.parent_id]) {
        meta.appendChild(document.createTextNode(" replied to "));
        meta.appendChild(el("a", { "class": "replyd-parent", href: "#replyd-comment-" + c.parent_id }, [names[c.parent_id]]));
      }
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(el("time", { "class": "replyd-date", datetime: c.created_at }, [when(c.created_at)]));
      var text = el("div", { "class": "replyd-body" });
      linkify(c.body, text);
      var item = el("li", { "class": "replyd-comment", id: "replyd-comment-" + c.id, "aria-labelledby": by, tabindex: "-1" }, [
        el("article", {}, [meta, text])
      ]);
      item.style.setProperty("--replyd-depth", String(Math.min(c.depth || 0, 8)));
      if (!closed && commentForm) {
        var reply = el("button", { type: "button", "class": "replyd-reply" }, ["Reply"]);
        reply.setAttribute("aria-label", "Reply to " + author);
        reply.addEventListener("click", function () { commentForm.replyTo({ id: c.id, author_name: author }); });
        item.firstChild.appendChild(reply);
      }
      list.appendChild(item);
    });
    var target = focusId && document.getElementById("replyd-comment-" + focusId);
    if (target) { target.scrollIntoView({ block: "center" }); target.focus({ preventScroll: true }); }
  }

  function load(focusId) {
    return Promise.all([call("GET", postPath), call("GET", postPath + "/comments")]).then(function (answers) {
      if (answers[0].status !== 200 || answers[1].status !== 200) {
        showNotice(answers[0].status === 404 ? "Comments are not available for this page." : "The comments could not be loaded.");
        return;
      }
      var closed = answers[0].data.closed;
      if (!closed && !commentForm) {
        commentForm = buildCommentForm();
        section.appendChild(commentForm);
        section.appendChild(buildFollowForm());
      } else if (closed && !commentForm) {
        section.appendChild(el("p", { "class": "replyd-closed" }, ["This post is closed to new comments."]));
        commentForm = false;
      }
      render(answers[1].data.comments, closed, focusId);
    }, function () { showNotice("The comments could not be loaded."); });
  }

  // Back from a confirmation link: the fragment says what happened and holds the author token,
  // which lets this browser's next comments with that address appear without another mail.
  var focusId = null, back = new URLSearchParams(window.location.hash.slice(1));
  if (back.get("replyd-confirmed")) {
    if (back.get("replyd-author")) save({ token: back.get("replyd-author") });
    var confirmed = back.get("replyd-confirmed");
    focusId = confirmed.indexOf("comment-") === 0 ? confirmed.slice(8) : null;
    showNotice(focusId ? "Your comment is published." : "You follow this post by email now.");
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  if (root.getAttribute("data-style") !== "none" && !document.querySelector("link[data-replyd]")) {
    var sheet = el("link", { rel: "stylesheet", href: base + "/embed.css", "data-replyd": "" });
    document.head.insertBefore(sheet, document.head.firstChild);  // the blog's own CSS comes later and wins
  }
  root.textContent = "";
  root.appendChild(section);
  load(focusId);
})();
